package trackertest

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// This file reproduces how FastAPI 0.6x with pydantic v1 turns a request into the handler's
// arguments, and the 422 answers it gives when it cannot (the "detail" list, in field order).

// answer is a complete response: status, content type (empty: none) and body.
type answer struct {
	status   int
	ctype    string
	body     []byte
	location string
}

const (
	ctypeText = "text/plain; charset=utf-8"
	ctypeJSON = "application/json"
)

func textAnswer(status int, s string) answer {
	return answer{status: status, ctype: ctypeText, body: []byte(s)}
}

func jsonAnswer(status int, v any) answer {
	return answer{status: status, ctype: ctypeJSON, body: pyCompact(v)}
}

// detailItem is one entry of a 422 "detail" list.
func detailItem(loc []any, msg, typ string) orderedObject {
	return orderedObject{{"loc", loc}, {"msg", msg}, {"type", typ}}
}

func missing(loc ...any) orderedObject {
	return detailItem(loc, "field required", "value_error.missing")
}

func validationAnswer(items []orderedObject) answer {
	list := make([]any, len(items))
	for i, it := range items {
		list[i] = it
	}
	return jsonAnswer(http.StatusUnprocessableEntity, orderedObject{{"detail", list}})
}

// queryParams reads the required query parameters in order (the last of repeated values wins,
// as in Starlette); a missing one gives the 422 FastAPI gives.
func queryParams(r *http.Request, names ...string) ([]string, *answer) {
	q := r.URL.Query()
	vals := make([]string, len(names))
	var errs []orderedObject
	for i, n := range names {
		vs, ok := q[n]
		if !ok || len(vs) == 0 {
			errs = append(errs, missing("query", n))
			continue
		}
		vals[i] = vs[len(vs)-1]
	}
	if errs != nil {
		a := validationAnswer(errs)
		return nil, &a
	}
	return vals, nil
}

// bodyFields decodes a JSON body into the named string fields, all required, the way a
// pydantic v1 model with `name: str` fields does: numbers (and booleans, which Python counts as
// ints) are coerced to strings, extra fields are ignored.
func bodyFields(r *http.Request, names ...string) ([]string, *answer) {
	raw, err := readBody(r)
	if isTooLarge(err) {
		a := tooLarge()
		return nil, &a
	}
	if err != nil {
		a := textAnswer(http.StatusBadRequest, "There was an error parsing the body")
		return nil, &a
	}
	fail := func(items ...orderedObject) ([]string, *answer) {
		a := validationAnswer(items)
		return nil, &a
	}
	if len(raw) == 0 {
		return fail(missing("body"))
	}
	var body any
	if isJSONContentType(r.Header.Get("Content-Type")) {
		doc := strings.TrimPrefix(string(raw), "\ufeff")
		if !utf8.ValidString(doc) || jsonDepth(doc, MaxJSONDepth) > MaxJSONDepth {
			// Deeper nesting would exhaust the decoder's stack (Python's
			// json module fails on it too).
			a := textAnswer(http.StatusBadRequest, "There was an error parsing the body")
			return nil, &a
		}
		v, err := pyLoads(doc)
		var je *pyJSONError
		if errors.As(err, &je) {
			ctx := orderedObject{{"msg", je.Msg}, {"doc", je.Doc}, {"pos", je.Pos}, {"lineno", je.Line}, {"colno", je.Col}}
			item := detailItem([]any{"body", je.Pos}, je.Error(), "value_error.jsondecode")
			item = append(item, keyValue{"ctx", ctx})
			return fail(item)
		}
		if v == nil { // a JSON null body counts as no body
			return fail(missing("body"))
		}
		body = v
	} else {
		// Not JSON: FastAPI hands the raw bytes to the model, which cannot make a dict of them.
		return fail(detailItem([]any{"body"}, "value is not a valid dict", "type_error.dict"))
	}
	obj, ok := asDict(body)
	if !ok {
		return fail(detailItem([]any{"body"}, "value is not a valid dict", "type_error.dict"))
	}
	vals := make([]string, len(names))
	var errs []orderedObject
	for i, n := range names {
		v, ok := obj[n]
		if !ok {
			errs = append(errs, missing("body", n))
			continue
		}
		switch x := v.(type) {
		case nil:
			errs = append(errs, detailItem([]any{"body", n}, "none is not an allowed value", "type_error.none.not_allowed"))
		case string:
			vals[i] = x
		case pyNumber:
			vals[i] = x.str()
		case bool:
			vals[i] = "False"
			if x {
				vals[i] = "True"
			}
		default:
			errs = append(errs, detailItem([]any{"body", n}, "str type expected", "type_error.str"))
		}
	}
	if errs != nil {
		return fail(errs...)
	}
	return vals, nil
}

// isJSONContentType mirrors FastAPI: no Content-Type at all is read as JSON, and so is any
// application/json or application/*+json.
func isJSONContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
	}
	main, sub, ok := strings.Cut(mt, "/")
	if !ok || main != "application" {
		return false
	}
	return sub == "json" || strings.HasSuffix(sub, "+json")
}

// asDict is pydantic v1's dict(value) for a model: a dict as is, or a list of key/value pairs
// (2-element lists or 2-character strings). Only string keys can name a field.
func asDict(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case *pyObject:
		return x.vals, true
	case []any:
		m := map[string]any{}
		for _, e := range x {
			var k, val any
			switch p := e.(type) {
			case []any:
				if len(p) != 2 {
					return nil, false
				}
				k, val = p[0], p[1]
			case string:
				rs := []rune(p)
				if len(rs) != 2 {
					return nil, false
				}
				k, val = string(rs[0]), string(rs[1])
			default:
				return nil, false
			}
			switch k.(type) {
			case []any, *pyObject: // unhashable
				return nil, false
			case string:
				m[k.(string)] = val
			}
		}
		return m, true
	}
	return nil, false
}

// readBody reads a request body into one buffer of its announced length
// (not grown by doubling), or grown as it comes when the length is not
// announced; admitBody has bounded it.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength < 0 {
		return io.ReadAll(r.Body)
	}
	buf := make([]byte, r.ContentLength)
	n, err := io.ReadFull(r.Body, buf)
	if err == io.EOF && r.ContentLength == 0 {
		err = nil
	}
	return buf[:n], err
}
