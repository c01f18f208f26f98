package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/trackertest"
)

// Example is the upstream README's worker loop in Go, against an in-memory
// tracker. A real worker passes its tracker's URL, leaves the journal at its
// default place, and waits for jobs with WaitForJob instead of stopping when
// the queue is empty.
func Example() {
	tracker := trackertest.New(trackertest.Options{Project: "LAION-5B", Seed: 1,
		Jobs: []any{"s3://bucket/shard-0001", "s3://bucket/shard-0002"}})
	srv := httptest.NewServer(tracker)
	defer srv.Close()
	dir, err := os.MkdirTemp("", "worker")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	c, err := client.Init(ctx, srv.URL, "a",
		client.WithNickname("Cluster 2 on AWS"),
		client.WithVerbose(false),
		client.WithJournal(filepath.Join(dir, "journal.db")))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("project:", c.Project())

	completed := 0
	for {
		err := c.NewJob(ctx)
		if errors.Is(err, client.ErrNoJobs) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		shard := c.Job().Text()
		for i := 1; i <= 3; i++ {
			c.Log(fmt.Sprintf("analysed %d / 3 parts of %s", i, shard))
		}
		output := map[string]any{"file": shard + ".tar", "total_scraped": 123}
		if err := c.CompleteJob(ctx, output); err != nil {
			log.Fatal(err)
		}
		completed++
	}
	fmt.Println("completed:", completed)
	if err := c.Bye(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// project: LAION-5B
	// completed: 2
}
