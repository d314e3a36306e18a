package main

import (
	"sync"
	"testing"
)

// go test -bench . -cpu 1: the uncontended lock+unlock that gsync's criterion bench compares
// with.
func BenchmarkUncontendedMutex(b *testing.B) {
	var m sync.Mutex
	count := 0
	for i := 0; i < b.N; i++ {
		m.Lock()
		count++
		m.Unlock()
	}
	_ = count
}
