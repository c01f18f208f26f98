package trackertest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/distcompute/distcompute-go/trackertest"
)

// A Tracker is an http.Handler: serve it however a test likes.
func ExampleNew() {
	tr := trackertest.New(trackertest.Options{
		Project: "Demo",
		Stages:  map[string]string{"a": "CPU", "b": "GPU"},
		Jobs:    []any{"shard-1.tar", map[string]any{"url": "s3://b/2.tar", "shard": 2}},
	})
	srv := httptest.NewServer(tr)
	defer srv.Close()

	resp, _ := http.Get(srv.URL + "/api/jobCount?stage=a")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(b))

	resp, _ = http.Post(srv.URL+"/api/newJob", "application/json", strings.NewReader(`{"token":"nobody"}`))
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(b))

	j, _ := tr.Job(2)
	fmt.Println(j.State, *j.Data["a"])
	// Output:
	// 200 2
	// 404 The server could not find this worker. Did the worker time out?
	// open <!json!>{"shard": 2, "url": "s3://b/2.tar"}
}
