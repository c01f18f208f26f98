package trackertest

import (
	"bytes"
	"html/template"
	"net/http"
	"sort"
	"strings"
)

// The dashboard pages are plain: they show what the upstream pages show (workers per stage,
// completion, the leaderboard, one worker), not how.

const ctypeHTML = "text/html; charset=utf-8"

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!DOCTYPE html><html><head><meta charset="utf-8"><title>{{.Project}}</title></head><body><h1>{{.Project}}</h1>{{end}}
{{define "index"}}{{template "head" .}}
<p>Completed: {{.Closed}} / {{.Total}} jobs</p>
{{range .Stages}}<h2>{{.Name}} ({{.Letter}}): {{len .Workers}} workers, {{.Open}} open jobs</h2>
<table><tr><th>worker</th><th>job</th><th>progress</th><th>completed</th></tr>
{{range .Workers}}<tr><td><a href="/worker/{{call $.Lower .StageName}}/{{.DisplayName}}">{{.DisplayName}}</a></td><td>{{if .Job}}#{{.Job}}{{end}}</td><td>{{.Progress}}</td><td>{{.Completed}}</td></tr>
{{end}}</table>
{{end}}<p><a href="/leaderboard">Leaderboard</a></p></body></html>{{end}}
{{define "leaderboard"}}{{template "head" .}}
<h2>Leaderboard</h2><table><tr><th>nickname</th><th>jobs completed</th></tr>
{{range .Users}}<tr><td>{{.Nickname}}</td><td>{{.Completed}}</td></tr>
{{end}}</table></body></html>{{end}}
{{define "worker"}}{{template "head" .}}
<h2>{{.W.DisplayName}} ({{.StageName}})</h2>
<p>Nickname: {{.W.Nickname}}</p><p>Job: {{if .W.Job}}#{{.W.Job}}{{else}}none{{end}}</p>
<p>Progress: {{.W.Progress}}</p><p>Jobs completed: {{.W.Completed}}</p></body></html>{{end}}
`))

type pageWorker struct {
	WorkerView
	StageName string
}

func render(name string, data any) answer {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		return textAnswer(http.StatusInternalServerError, msgServerError)
	}
	return answer{status: http.StatusOK, ctype: ctypeHTML, body: b.Bytes()}
}

func (t *Tracker) indexPage() answer {
	type stage struct {
		Letter, Name string
		Open         int
		Workers      []pageWorker
	}
	t.mu.Lock()
	var stages []stage
	for s := 0; s < numStages; s++ {
		if t.names[s] == "" {
			continue
		}
		st := stage{Letter: letter(s), Name: t.names[s], Open: len(t.open[s].items)}
		for _, w := range t.sortedWorkers() {
			if w.stage == s {
				st.Workers = append(st.Workers, pageWorker{t.workerView(w), t.names[s]})
			}
		}
		stages = append(stages, st)
	}
	closed := 0
	for _, j := range t.jobs {
		if j.closed {
			closed++
		}
	}
	total := len(t.jobs)
	t.mu.Unlock()
	return render("index", map[string]any{
		"Project": t.project, "Stages": stages, "Closed": closed, "Total": total,
		"Lower": strings.ToLower,
	})
}

func (t *Tracker) leaderboardPage() answer {
	type user struct {
		Nickname  string
		Completed int
	}
	var users []user
	for n, c := range t.Leaderboard() {
		users = append(users, user{n, c})
	}
	sort.Slice(users, func(i, j int) bool {
		if users[i].Completed != users[j].Completed {
			return users[i].Completed > users[j].Completed
		}
		return users[i].Nickname < users[j].Nickname
	})
	return render("leaderboard", map[string]any{"Project": t.project, "Users": users})
}

// workerPage is GET /worker/{stage_name}/{display_name}; stage_name is the lowercased name of
// an enabled stage.
func (t *Tracker) workerPage(stageName, displayName string) answer {
	s := -1
	for i, n := range t.names {
		if n != "" && stageName == strings.ToLower(n) {
			s = i
			break
		}
	}
	if s < 0 {
		return textAnswer(http.StatusBadRequest, "Invalid worker stage.")
	}
	t.mu.Lock()
	w := t.byName[displayName]
	if w == nil || w.stage != s {
		t.mu.Unlock()
		return textAnswer(http.StatusNotFound, "Worker not found.")
	}
	v := t.workerView(w)
	t.mu.Unlock()
	return render("worker", map[string]any{"Project": t.project, "W": v, "StageName": t.names[s]})
}
