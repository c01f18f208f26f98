module github.com/distcompute/distcompute-go

go 1.26.8

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	github.com/lmittmann/tint v1.2.1
	github.com/rogpeppe/go-internal v1.14.1
	go.etcd.io/bbolt v1.4.3
	golang.org/x/sys v0.29.0
)

require golang.org/x/tools v0.26.0 // indirect
