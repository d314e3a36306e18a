// Go twins of the experiment program in ../src/bin/experiment/: the same experiments, measured
// the same way, so that `cargo xtask bench` can put Go's numbers next to ours.
//
// Usage: bench SECTION [flags]; each run prints one line of key=value results.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench memory|switch|locks|spawn|uncontended|scheduling|echo-server [flags]")
		os.Exit(2)
	}
	section, args := os.Args[1], os.Args[2:]
	flags := flag.NewFlagSet(section, flag.ExitOnError)
	n := flags.Int("n", 10000, "goroutines, operations or readers")
	workers := flags.Int("workers", runtime.NumCPU(), "GOMAXPROCS: OS threads running goroutines at once")
	kind := flags.String("kind", "mutex", "locks: mutex or rwmutex; scheduling: fresh-partner, yield or hog")
	rounds := flags.Int("rounds", 30, "scheduling fresh-partner: rounds")
	expect := flags.Int("expect", 0, "echo-server: connections whose first round trip triggers the memory reading")
	flags.Parse(args)
	runtime.GOMAXPROCS(*workers)
	switch section {
	case "memory":
		memory(*n)
	case "switch":
		contextSwitch(*n)
	case "locks":
		locks(*n, *kind)
	case "spawn":
		spawn(*n)
	case "uncontended":
		uncontended(*n)
	case "scheduling":
		scheduling(*kind, *n, *rounds)
	case "echo-server":
		echoServer(*expect)
	default:
		fmt.Fprintf(os.Stderr, "unknown section %q\n", section)
		os.Exit(2)
	}
}

// The seed's program: n goroutines that each signal a WaitGroup and block on a channel
// receive; memory obtained from the OS before and after, divided by n.
func memory(n int) {
	memConsumed := func() uint64 {
		runtime.GC()
		var s runtime.MemStats
		runtime.ReadMemStats(&s)
		return s.Sys
	}
	var c <-chan interface{}
	var wg sync.WaitGroup
	noop := func() { wg.Done(); <-c }
	wg.Add(n)
	before := memConsumed()
	rssBefore, pteBefore := residentAndPageTables()
	for i := n; i > 0; i-- {
		go noop()
	}
	wg.Wait()
	after := memConsumed()
	rssAfter, pteAfter := residentAndPageTables()
	resident := float64(rssAfter-rssBefore) / float64(n)
	pageTables := float64(pteAfter-pteBefore) / float64(n)
	fmt.Printf("bytes_per_goroutine=%.1f resident_per_goroutine=%.1f page_tables_per_goroutine=%.1f sys_per_goroutine=%.1f\n",
		resident+pageTables, resident, pageTables, float64(after-before)/float64(n))
}

// VmRSS and VmPTE of this process in bytes, from /proc/self/status: the measure the
// experiment program takes of ours.
func residentAndPageTables() (uint64, uint64) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var rss, pte uint64
	for _, line := range strings.Split(string(status), "\n") {
		var kib uint64
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kib); err == nil {
			rss = kib * 1024
		}
		if _, err := fmt.Sscanf(line, "VmPTE: %d kB", &kib); err == nil {
			pte = kib * 1024
		}
	}
	return rss, pte
}

// The seed's BenchmarkContextSwitch: one goroutine sends n empty values on an unbuffered
// channel, another receives them; time per send.
func contextSwitch(n int) {
	var wg sync.WaitGroup
	begin := make(chan struct{})
	c := make(chan struct{})
	var token struct{}
	sender := func() {
		defer wg.Done()
		<-begin
		for i := 0; i < n; i++ {
			c <- token
		}
	}
	receiver := func() {
		defer wg.Done()
		<-begin
		for i := 0; i < n; i++ {
			<-c
		}
	}
	wg.Add(2)
	go sender()
	go receiver()
	start := time.Now()
	close(begin)
	wg.Wait()
	fmt.Printf("ns_per_op=%.2f\n", float64(time.Since(start).Nanoseconds())/float64(n))
}

// The seed's Mutex vs RWMutex program: a producer locks and unlocks five times, sleeping
// between; count observers each lock and unlock once through a Locker.
func locks(count int, kind string) {
	producer := func(wg *sync.WaitGroup, l sync.Locker) {
		defer wg.Done()
		for i := 5; i > 0; i-- {
			l.Lock()
			l.Unlock()
			time.Sleep(1)
		}
	}
	observer := func(wg *sync.WaitGroup, l sync.Locker) {
		defer wg.Done()
		l.Lock()
		defer l.Unlock()
	}
	test := func(count int, mutex, rwMutex sync.Locker) time.Duration {
		var wg sync.WaitGroup
		wg.Add(count + 1)
		start := time.Now()
		go producer(&wg, mutex)
		for i := count; i > 0; i-- {
			go observer(&wg, rwMutex)
		}
		wg.Wait()
		return time.Since(start)
	}
	var elapsed time.Duration
	switch kind {
	case "rwmutex":
		var m sync.RWMutex
		elapsed = test(count, &m, m.RLocker())
	case "mutex":
		var m sync.Mutex
		elapsed = test(count, &m, &m)
	default:
		fmt.Fprintf(os.Stderr, "unknown lock kind %q\n", kind)
		os.Exit(2)
	}
	fmt.Printf("seconds=%.9f\n", elapsed.Seconds())
}

// Spawn and join: n goroutines that each call Done on a WaitGroup and end; time per goroutine.
func spawn(n int) {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go wg.Done()
	}
	wg.Wait()
	fmt.Printf("ns_per_goroutine=%.2f\n", float64(time.Since(start).Nanoseconds())/float64(n))
}

// Uncontended Lock and Unlock on one goroutine: time per pair.
func uncontended(n int) {
	var m sync.Mutex
	count := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		m.Lock()
		count++
		m.Unlock()
	}
	elapsed := time.Since(start)
	if count != n {
		os.Exit(1)
	}
	fmt.Printf("ns_per_op=%.2f\n", float64(elapsed.Nanoseconds())/float64(n))
}

// Scheduling behaviour, as the experiment program's `scheduling` section measures it.
func scheduling(kind string, n, rounds int) {
	switch kind {
	case "fresh-partner":
		freshPartner(n, rounds)
	case "yield":
		yields(n)
	case "hog":
		pingPongHog(n)
	default:
		fmt.Fprintf(os.Stderr, "unknown kind %q\n", kind)
		os.Exit(2)
	}
}

// Rounds in which a newly started goroutine sends n values to the main goroutine over an
// unbuffered channel: the 90th-percentile and the worst round, per message.
func freshPartner(n, rounds int) {
	perMessage := make([]float64, 0, rounds)
	for r := 0; r < rounds; r++ {
		c := make(chan int)
		done := make(chan struct{})
		start := time.Now()
		go func() {
			for i := 0; i < n; i++ {
				c <- i
			}
			close(done)
		}()
		for i := 0; i < n; i++ {
			<-c
		}
		elapsed := time.Since(start)
		<-done
		perMessage = append(perMessage, float64(elapsed.Nanoseconds())/float64(n))
	}
	sort.Float64s(perMessage)
	p90 := perMessage[(len(perMessage)*9+9)/10-1]
	fmt.Printf("p90_ns_per_op=%.2f worst_ns_per_op=%.2f\n", p90, perMessage[len(perMessage)-1])
}

// Two goroutines take turns through runtime.Gosched on one P: time per yield.
func yields(n int) {
	runtime.GOMAXPROCS(1)
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("ns_per_op=%.2f\n", float64(time.Since(start).Nanoseconds())/float64(2*n))
}

// The runtime's BenchmarkPingPongHog: a goroutine spins on select with default while two
// others ping-pong n times, on one P. Time per round trip.
func pingPongHog(n int) {
	runtime.GOMAXPROCS(1)
	stop, done := make(chan bool), make(chan bool)
	go func() {
		for {
			select {
			case <-stop:
				done <- true
				return
			default:
			}
		}
	}()
	ping, pong := make(chan bool), make(chan bool)
	go func() {
		for j := 0; j < n; j++ {
			pong <- <-ping
		}
		close(stop)
		done <- true
	}()
	go func() {
		for i := 0; i < n; i++ {
			ping <- <-pong
		}
		done <- true
	}()
	start := time.Now()
	ping <- true
	<-stop
	elapsed := time.Since(start)
	<-ping
	<-done
	<-done
	<-done
	fmt.Printf("ns_per_op=%.2f\n", float64(elapsed.Nanoseconds())/float64(n))
}

// The echo server twin of `experiment echo-server`: a goroutine per connection reading into a
// 4 KiB buffer and writing back what it read. Prints port=P, and once `expect` connections have
// each done a round trip, idle_bytes_per_conn=B ((ΔVmRSS + ΔVmPTE) / expect, after 300 ms).
func echoServer(expect int) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rssBefore, pteBefore := residentAndPageTables()
	fmt.Printf("port=%d\n", listener.Addr().(*net.TCPAddr).Port)
	var firstTrips int64
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue
		}
		go func(conn net.Conn) {
			defer conn.Close()
			conn.(*net.TCPConn).SetNoDelay(true)
			buf := make([]byte, 4096)
			first := true
			for {
				n, err := conn.Read(buf)
				if err != nil || n == 0 {
					return
				}
				if _, err := conn.Write(buf[:n]); err != nil {
					return
				}
				if first {
					first = false
					if atomic.AddInt64(&firstTrips, 1) == int64(expect) {
						go func() {
							time.Sleep(300 * time.Millisecond)
							rss, pte := residentAndPageTables()
							fmt.Printf("idle_bytes_per_conn=%.0f\n", float64(rss+pte-rssBefore-pteBefore)/float64(expect))
						}()
					}
				}
			}
		}(conn)
	}
}
