use std::alloc::Layout;
use std::collections::HashSet;
use std::ptr::NonNull;

use super::heap::{Heap, InstalledHeap, alloc, dealloc};

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Runs `f` on a fresh thread with its own installed heap, as a worker does.
fn on_worker<R: Send>(f: impl FnOnce(&InstalledHeap) -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            let installed = Box::new(Heap::new()).install();
            let result = f(&installed);
            drop(installed);
            result
        })
        .join()
        .unwrap()
    })
}

#[test]
fn blocks_are_distinct_aligned_and_reused_after_a_local_free() {
    on_worker(|_| {
        let layout = layout(200);
        let blocks: Vec<NonNull<u8>> = (0..5_000).map(|_| alloc(layout)).collect();
        let distinct: HashSet<usize> = blocks.iter().map(|block| block.as_ptr().addr()).collect();
        assert_eq!(distinct.len(), blocks.len());
        assert!(blocks.iter().all(|block| block.as_ptr().addr() % 16 == 0));
        for (i, block) in blocks.iter().enumerate() {
            // SAFETY: the block holds 200 bytes and is ours.
            unsafe { block.as_ptr().write_bytes(i as u8, 200) };
        }
        for (i, block) in blocks.iter().enumerate() {
            // SAFETY: as above.
            assert_eq!(unsafe { *block.as_ptr().add(199) }, i as u8);
        }
        let last = *blocks.last().unwrap();
        for block in blocks {
            // SAFETY: from `alloc(layout)`, used no more.
            unsafe { dealloc(block, layout) };
        }
        assert_eq!(
            alloc(layout),
            last,
            "the last block freed is the first reused"
        );
    });
}

#[test]
fn blocks_freed_on_other_threads_come_back_to_their_owner() {
    let layout = layout(128);
    on_worker(|_| {
        let first: Vec<usize> = (0..2_000).map(|_| alloc(layout).as_ptr().addr()).collect();
        let freed = first.clone();
        std::thread::scope(|s| {
            s.spawn(move || {
                for address in freed {
                    let block = NonNull::new(std::ptr::with_exposed_provenance_mut(address));
                    // SAFETY: allocated above, used no more.
                    unsafe { dealloc(block.unwrap(), layout) };
                }
            });
        });
        // The owner reuses the same chunks instead of growing.
        let chunk_of = |address: usize| address & !(64 * 1024 - 1);
        let chunks: HashSet<usize> = first.iter().map(|&address| chunk_of(address)).collect();
        let again: HashSet<usize> = (0..2_000)
            .map(|_| chunk_of(alloc(layout).as_ptr().addr()))
            .collect();
        assert!(
            again.is_subset(&chunks),
            "{again:x?} grew beyond {chunks:x?}"
        );
    });
}

#[test]
fn large_and_overaligned_layouts_use_the_global_allocator() {
    for layout in [
        Layout::from_size_align(4096, 8).unwrap(),
        Layout::from_size_align(128, 64).unwrap(),
    ] {
        let block = alloc(layout);
        assert_eq!(block.as_ptr().addr() % layout.align(), 0);
        // SAFETY: from `alloc(layout)`.
        unsafe { dealloc(block, layout) };
    }
}

#[test]
fn a_retired_heap_hands_blocks_still_out_to_the_shared_heap() {
    let layout = layout(300);
    let kept: Vec<usize> =
        on_worker(|_| (0..1_000).map(|_| alloc(layout).as_ptr().addr()).collect());
    // The worker is gone; its blocks are still valid and free on this thread.
    for address in kept {
        let block = NonNull::new(std::ptr::with_exposed_provenance_mut::<u8>(address)).unwrap();
        // SAFETY: the block is still allocated and ours.
        unsafe { block.as_ptr().write_bytes(7, 300) };
        // SAFETY: from `alloc(layout)`, used no more.
        unsafe { dealloc(block, layout) };
    }
    // The shared heap collects them on its next allocations without growing.
    let block = alloc(layout);
    // SAFETY: as above.
    unsafe { dealloc(block, layout) };
}

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn trimming_gives_memory_back_after_a_burst() {
    let layout = layout(512);
    on_worker(|installed| {
        let before = resident_bytes();
        let blocks: Vec<NonNull<u8>> = (0..100_000).map(|_| alloc(layout)).collect();
        for block in &blocks {
            // SAFETY: the block holds 512 bytes and is ours.
            unsafe { block.as_ptr().write_bytes(1, 512) };
        }
        let during = resident_bytes();
        for block in blocks {
            // SAFETY: from `alloc(layout)`, used no more.
            unsafe { dealloc(block, layout) };
        }
        assert!(installed.heap().trim());
        let after = resident_bytes();
        // Other tests of this process may allocate meanwhile; most of the burst must be gone.
        assert!(
            during.saturating_sub(after) > 40 << 20,
            "{before} -> {during} -> {after}"
        );
    });
}

#[test]
fn every_size_up_to_the_largest_block_has_a_class_that_fits_it() {
    let mut previous = 0;
    for size in 1..=super::heap::MAX_BLOCK {
        let class = super::heap::class_of(Layout::from_size_align(size, 8).unwrap()).unwrap();
        let block = super::heap::block_size(class);
        assert!(
            block >= size && block.is_multiple_of(16),
            "{size} -> class {class} of {block}"
        );
        assert!(class == previous || class == previous + 1);
        assert!(
            block - size < block / 8 || size <= 128,
            "{size} wastes too much in {block}"
        );
        previous = class;
    }
    assert_eq!(previous, 31);
}
