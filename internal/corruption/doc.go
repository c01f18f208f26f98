// Package corruption holds the corruption corpus test: real journals, written
// by the client's job cycle, damaged in a few hundred ways (truncations, byte
// flips in every kind of bbolt page, zeroed and rewritten meta pages, looping
// and huge overflow fields, page ids past the end, empty and foreign files),
// each given to every dcjournal command and to client.Init in a child process
// under a time and a memory cap. It has no API; see corpus_test.go.
package corruption
