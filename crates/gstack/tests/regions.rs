//! Pooled stacks from guard regions and from the forced fallback: overflow reports, guards that
//! survive reuse and page release, the stack limit, and sizes checked where they are given.
//! Crashes and anything process-wide run in child processes.

mod common;
mod report;

use std::time::Duration;

use ctxswitch::{Coroutine, Stack, page_size};
use gstack::{PooledStack, StackBackend, StackError, StackPool};
use report::assert_aborted_with;
use testkit::ChildTest;

const CHILD: ChildTest = ChildTest::new("GSTACK_REGIONS_CHILD");
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// Whether this kernel has guard regions; when not, says which test is skipped and why.
fn guard_regions_or_skip(test: &str) -> bool {
    let supported = gstack::stack_backend() == StackBackend::GuardRegions;
    if !supported {
        eprintln!(
            "skipping {test}: this kernel has no guard regions (MADV_GUARD_INSTALL, Linux \
             6.13+), so pools use a mapping per stack"
        );
    }
    supported
}

/// Resident pages of `range` by `mincore`.
fn resident_pages(range: std::ops::Range<usize>) -> usize {
    let page = page_size();
    let mut residency = vec![0u8; (range.end - range.start).div_ceil(page)];
    // SAFETY: `range` starts page aligned inside a live stack's slot and `residency` holds one
    // byte per page.
    let status = unsafe {
        libc::mincore(
            range.start as *mut libc::c_void,
            range.end - range.start,
            residency.as_mut_ptr(),
        )
    };
    assert_eq!(status, 0, "mincore: {}", std::io::Error::last_os_error());
    residency.iter().filter(|&&byte| byte & 1 == 1).count()
}

/// Overflows a pooled 64-KiB stack labelled goroutine 7 "deep", after checking its backend.
fn overflow_a_pooled_stack(backend: StackBackend) -> ! {
    gstack::install_overflow_handler().unwrap();
    let pool = StackPool::new(64 * 1024);
    let stack = pool.get().unwrap();
    assert_eq!(stack.backend(), backend);
    assert_eq!(stack.guard_range().end, stack.limit());
    stack.set_label(7, "deep");
    let mut co = Coroutine::<(), (), u64, PooledStack>::with_stack(stack, |_, ()| {
        common::recurse_forever(0)
    })
    .unwrap();
    co.resume(());
    unreachable!("unbounded recursion returned");
}

const DEEP_REPORT: &str = "goroutine stack overflow: goroutine 7 (\"deep\"), stack of 64 KiB\n";

#[test]
fn an_overflow_on_a_guard_region_stack_is_reported() {
    const NAME: &str = "an_overflow_on_a_guard_region_stack_is_reported";
    if CHILD.is_child(NAME) {
        overflow_a_pooled_stack(StackBackend::GuardRegions);
    }
    if !guard_regions_or_skip(NAME) {
        return;
    }
    let output = CHILD.run(NAME).limit(CHILD_LIMIT).output();
    assert_aborted_with(&output, DEEP_REPORT);
}

#[test]
fn an_overflow_on_the_forced_fallback_is_reported_the_same_way() {
    const NAME: &str = "an_overflow_on_the_forced_fallback_is_reported_the_same_way";
    if CHILD.is_child(NAME) {
        gstack::force_mapping_per_stack();
        assert_eq!(gstack::stack_backend(), StackBackend::MappingPerStack);
        overflow_a_pooled_stack(StackBackend::MappingPerStack);
    }
    let output = CHILD.run(NAME).limit(CHILD_LIMIT).output();
    assert_aborted_with(&output, DEEP_REPORT);
}

#[test]
fn a_guard_survives_reuse_and_page_release() {
    const NAME: &str = "a_guard_survives_reuse_and_page_release";
    if CHILD.is_child(NAME) {
        gstack::install_overflow_handler().unwrap();
        // No warm cache: every returned stack has all its pages released at once.
        let pool = StackPool::builder(64 * 1024)
            .thread_cache(0)
            .global_capacity(0)
            .build()
            .unwrap();
        let stack = pool.get().unwrap();
        let (limit, base, guard) = (stack.limit(), stack.base(), stack.guard_range());
        stack.set_label(3, "first owner");
        // SAFETY: every page of the stack this thread holds alone.
        unsafe { std::ptr::write_bytes(limit as *mut u8, 0xa5, base - limit) };
        let body = limit..base.next_multiple_of(page_size());
        assert_eq!(resident_pages(body.clone()), body.len() / page_size());
        drop(stack);
        // Returned stacks are released in batches; the last, partial one on request.
        assert_eq!(gstack::release_pending(), 1);
        assert_eq!(resident_pages(body.clone()), 0, "released with its batch");

        let again = pool.get().unwrap();
        assert_eq!(
            (again.limit(), again.base()),
            (limit, base),
            "the slot is reused"
        );
        // SAFETY: the top word of the stack this thread holds alone.
        let top = unsafe { ((base - 8) as *const u64).read_volatile() };
        assert_eq!(top, 0, "a reused slot starts zeroed");
        again.set_label(9, "reused");
        eprintln!("writing into the guard");
        // SAFETY: deliberately none: a write into the guard page, which must fault.
        unsafe { ((guard.end - 8) as *mut u64).write_volatile(1) };
        unreachable!("the guard of a reused, released slot let a write through");
    }
    if !guard_regions_or_skip(NAME) {
        return;
    }
    let output = CHILD.run(NAME).limit(CHILD_LIMIT).output();
    assert_aborted_with(
        &output,
        "writing into the guard\ngoroutine stack overflow: goroutine 9 (\"reused\"), stack of \
         64 KiB\n",
    );
}

/// Neighbouring slots are released in one call that spans the guard pages between them: each
/// of those guards still faults afterwards.
#[test]
fn guards_between_neighbouring_slots_survive_a_batched_release() {
    const NAME: &str = "guards_between_neighbouring_slots_survive_a_batched_release";
    if CHILD.is_child(NAME) {
        gstack::install_overflow_handler().unwrap();
        // A stack size of its own: a class, and a region, no other test in this process uses.
        let pool = StackPool::builder(72 * 1024)
            .thread_cache(0)
            .global_capacity(0)
            .build()
            .unwrap();
        let mut stacks: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
        let guards: Vec<_> = stacks.iter().map(|stack| stack.guard_range()).collect();
        let slot_size = 72 * 1024 + 2 * page_size();
        for pair in guards.windows(2) {
            assert_eq!(
                pair[1].start,
                pair[0].start + slot_size,
                "carved side by side"
            );
        }
        for stack in &stacks {
            // SAFETY: every page of a stack this thread holds alone.
            unsafe { std::ptr::write_bytes(stack.limit() as *mut u8, 0x5a, stack.size()) };
        }
        // The fourth stays in use beside the released run: its pages must stay.
        let kept = stacks.pop().unwrap();
        let bodies: Vec<_> = stacks
            .iter()
            .map(|stack| stack.limit()..stack.base().next_multiple_of(page_size()))
            .collect();
        drop(stacks);
        assert_eq!(gstack::release_pending(), 3);
        for body in &bodies {
            assert_eq!(resident_pages(body.clone()), 0, "released with its batch");
        }
        // SAFETY: the lowest and the top word of the stack this thread still holds.
        let (low, high) = unsafe {
            (
                (kept.limit() as *const u64).read_volatile(),
                ((kept.base() - 8) as *const u64).read_volatile(),
            )
        };
        assert_eq!((low, high), (0x5a5a_5a5a_5a5a_5a5a, 0x5a5a_5a5a_5a5a_5a5a));
        let again: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
        let middle = again
            .iter()
            .find(|stack| stack.guard_range() == guards[1])
            .expect("the middle slot is reused");
        middle.set_label(5, "middle");
        eprintln!("writing into the middle guard");
        // SAFETY: deliberately none: a write into the guard page, which must fault.
        unsafe { ((guards[1].end - 8) as *mut u64).write_volatile(1) };
        unreachable!("a guard released with its neighbours let a write through");
    }
    if !guard_regions_or_skip(NAME) {
        return;
    }
    let output = CHILD.run(NAME).limit(CHILD_LIMIT).output();
    assert_aborted_with(
        &output,
        "writing into the middle guard\ngoroutine stack overflow: goroutine 5 (\"middle\"), stack \
         of 72 KiB\n",
    );
}

/// A slot that gave back its page tables lost its guard marker with them: taken again, it is
/// guarded again.
#[test]
fn a_slot_that_gave_back_its_page_tables_is_guarded_again_when_reused() {
    const NAME: &str = "a_slot_that_gave_back_its_page_tables_is_guarded_again_when_reused";
    if CHILD.is_child(NAME) {
        gstack::install_overflow_handler().unwrap();
        // A stack size of its own, and no warm cache: every returned stack goes cold.
        let pool = StackPool::builder(40 * 1024)
            .thread_cache(0)
            .global_capacity(0)
            .build()
            .unwrap();
        // 48-KiB slots: 150 of them span three page tables' worth of address space.
        let stacks: Vec<_> = (0..150).map(|_| pool.get().unwrap()).collect();
        let mut guards: Vec<_> = stacks.iter().map(|stack| stack.guard_range()).collect();
        guards.sort_by_key(|guard| guard.start);
        for stack in &stacks {
            // SAFETY: the top word of a stack this thread holds alone.
            unsafe { ((stack.base() - 8) as *mut u64).write_volatile(1) };
        }
        drop(stacks);
        gstack::release_pending();
        assert_eq!(
            gstack::return_page_tables(),
            0,
            "none had stayed unused yet"
        );
        let returned = gstack::return_page_tables();
        assert!(
            returned >= 40,
            "only {returned} slots gave back their page tables"
        );
        assert_eq!(
            gstack::return_page_tables(),
            0,
            "bare slots are not counted twice"
        );
        let again: Vec<_> = (0..150).map(|_| pool.get().unwrap()).collect();
        // The middle slot of the run lies inside an emptied page table's span.
        let middle = &guards[75];
        let stack = again
            .iter()
            .find(|stack| stack.guard_range() == *middle)
            .expect("every slot is reused");
        stack.set_label(4, "bare");
        eprintln!("writing into a restored guard");
        // SAFETY: deliberately none: a write into the guard page, which must fault.
        unsafe { ((middle.end - 8) as *mut u64).write_volatile(1) };
        unreachable!("a slot reused after giving back its page tables had no guard");
    }
    if !guard_regions_or_skip(NAME) {
        return;
    }
    if !gstack::page_tables_returnable() {
        eprintln!("skipping {NAME}: this kernel keeps page tables that MADV_DONTNEED empties");
        return;
    }
    let output = CHILD.run(NAME).limit(CHILD_LIMIT).output();
    assert_aborted_with(
        &output,
        "writing into a restored guard\ngoroutine stack overflow: goroutine 4 (\"bare\"), stack \
         of 40 KiB\n",
    );
}

#[test]
fn more_guarded_stacks_than_the_map_budget_allows() {
    const NAME: &str = "more_guarded_stacks_than_the_map_budget_allows";
    if CHILD.is_child(NAME) {
        let before = gstack::process_map_count().unwrap();
        let count = gstack::map_budget() + 10_000;
        let pool = StackPool::new(64 * 1024);
        let stacks: Vec<_> = (0..count).map(|_| pool.get().unwrap()).collect();
        for stack in &stacks {
            // SAFETY: the top word of a stack this thread holds alone.
            unsafe { ((stack.base() - 8) as *mut usize).write_volatile(stack.base()) };
        }
        let after = gstack::process_map_count().unwrap();
        assert!(
            gstack::stacks_in_use() >= count,
            "{}",
            gstack::stacks_in_use()
        );
        assert!(
            after <= before + 2 * gstack::guard_region_count() + 16,
            "{count} stacks took the process from {before} to {after} mappings"
        );
        println!("{count} stacks, {before} -> {after} mappings");
        return;
    }
    if !guard_regions_or_skip(NAME) {
        return;
    }
    let output = CHILD.run(NAME).limit(CHILD_LIMIT).output();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn a_set_stack_limit_caps_guard_region_stacks_too() {
    const NAME: &str = "a_set_stack_limit_caps_guard_region_stacks_too";
    if CHILD.is_child(NAME) {
        let pool = StackPool::with_limits(32 * 1024, 0, 0, 0);
        gstack::set_stack_limit(gstack::stacks_in_use() + 2);
        let held = [pool.get().unwrap(), pool.get().unwrap()];
        let err = pool.get().unwrap_err();
        assert!(
            matches!(
                err,
                StackError::MapLimit {
                    mappings_per_stack: 0,
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("set_stack_limit"), "{message}");
        drop(held);
        pool.get().expect("room again once stacks are returned");
        return;
    }
    if !guard_regions_or_skip(NAME) {
        return;
    }
    let output = CHILD.run(NAME).limit(CHILD_LIMIT).output();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn stack_sizes_are_checked_where_they_are_given() {
    let page = page_size();
    assert_eq!(gstack::check_stack_size(64 * 1024).unwrap(), 64 * 1024);
    assert_eq!(
        gstack::check_stack_size(ctxswitch::MIN_STACK_SIZE + 1).unwrap(),
        (ctxswitch::MIN_STACK_SIZE + 1).next_multiple_of(page)
    );
    for bad in [
        0,
        4096,
        ctxswitch::MIN_STACK_SIZE - 1,
        gstack::MAX_STACK_SIZE + 1,
    ] {
        let err = gstack::check_stack_size(bad).unwrap_err();
        assert!(
            matches!(err, StackError::InvalidSize { requested, .. } if requested == bad),
            "{err:?}"
        );
        assert!(err.to_string().contains(&bad.to_string()), "{err}");
        assert!(StackPool::builder(bad).build().is_err());
        assert!(matches!(
            StackPool::new(bad).get(),
            Err(StackError::InvalidSize { .. })
        ));
    }
    let err = StackPool::builder(usize::MAX).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "a goroutine stack of {} bytes is outside the accepted sizes, {} to {} bytes \
             (sizes within are rounded up to whole pages)",
            usize::MAX,
            ctxswitch::MIN_STACK_SIZE,
            gstack::MAX_STACK_SIZE
        )
    );
    // An odd size is rounded up, never refused, and the stack is at least that large.
    let pool = StackPool::builder(20_000).build().unwrap();
    let stack = pool.get().unwrap();
    assert!(stack.size() >= 20_000, "{}", stack.size());
    assert_eq!(stack.limit() % page, 0);
    assert_eq!(stack.base() % 16, 0);
}

#[test]
fn a_returned_stack_forgets_its_label() {
    const NAME: &str = "a_returned_stack_forgets_its_label";
    if CHILD.is_child(NAME) {
        gstack::install_overflow_handler().unwrap();
        // A thread cache of one: the stack comes back whole, pages and all.
        let pool = StackPool::with_limits(32 * 1024, 1, 0, 0);
        let stack = pool.get().unwrap();
        let guard = stack.guard_range();
        stack.set_label(42, "earlier goroutine");
        drop(stack);
        let again = pool.get().unwrap();
        assert_eq!(again.guard_range(), guard, "from the thread cache");
        // SAFETY: deliberately none: a write into the guard page, which must fault.
        unsafe { ((guard.start + 8) as *mut u64).write_volatile(1) };
        unreachable!("the guard let a write through");
    }
    let output = CHILD.run(NAME).limit(CHILD_LIMIT).output();
    assert_aborted_with(
        &output,
        "goroutine stack overflow: unnamed stack, stack of 32 KiB\n",
    );
}
