module tandem/bench/peers/go

go 1.19
