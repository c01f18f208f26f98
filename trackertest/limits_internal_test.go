
// A large body costs at most 4 times its size to read and decode, so that
// MaxLargeBodies bodies at once cost at most 4*MaxLargeBodies*MaxBodyBytes
// (2 * 4 * 32 MiB by default), whatever the number of clients.
func TestLargeBodyCost(t *testing.T) {
	tr := New(Options{Seed: 1})
	for name, data := range map[string]string{
		"plain":   strings.Repeat("a", 16<<20),
		"escaped": strings.Repeat(`a\"\n\u00e9`, 2<<20),
	} {
		body := `{"token":"x","data":"` + data + `"}`
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/completeJob", strings.NewReader(body)))
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s body of %d MiB: %d, %d MiB allocated", name, len(body)>>20, rec.Code, alloc>>20)
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s body: %d %q, want 404 (unknown worker)", name, rec.Code, rec.Body.String())
		}
		if alloc > 4*uint64(len(body)) {
			t.Errorf("%s body of %d MiB: %d MiB allocated, over 4 times its size", name, len(body)>>20, alloc>>20)
		}
	}
}
