package session

import "sync"

// maxTokens is how many tokens a Conn remembers for redaction: a Pool's
// slots and their re-registrations.
const maxTokens = 64

// tokenSet is the set of tokens a Conn has registered or sent, newest
// last, so that an error built from any answer (jobCount's included, which
// carries no token) never quotes one. Safe for concurrent use.
type tokenSet struct {
	mu   sync.Mutex
	toks []string
}

// note adds tok (if new), forgetting the oldest beyond maxTokens.
func (s *tokenSet) note(tok string) {
	if tok == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.toks {
		if t == tok {
			return
		}
	}
	if len(s.toks) == maxTokens {
		s.toks = append(s.toks[:0], s.toks[1:]...)
	}
	s.toks = append(s.toks, tok)
}

// redact replaces token and every token the Conn has seen in s (raw or
// JSON-escaped) by their redacted forms.
func (c *Conn) redact(s, token string) string {
	s = redactIn(s, token)
	c.tokens.mu.Lock()
	toks := append([]string(nil), c.tokens.toks...)
	c.tokens.mu.Unlock()
	for _, t := range toks {
		s = redactIn(s, t)
	}
	return s
}
