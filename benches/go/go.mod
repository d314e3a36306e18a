module goroutines/bench

go 1.19
