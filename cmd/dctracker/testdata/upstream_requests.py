"""Makes the requests the upstream Python client (distcompute-client) makes, with the standard
library only: same paths, query parameters, JSON bodies (json.dumps with its default
separators, as requests' json= sends them), the same "<!json!>" encoding and decoding, the same
status-code handling. Written for dctracker's tests; it is not the upstream client's code.

usage: upstream_requests.py URL
Runs the README loop for a stage-a worker (flagging its first job once), then for a stage-b
worker, and prints a JSON summary on the last line.
"""
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

JSON_PREFIX = "<!json!>"


class TrackerError(Exception):
    def __init__(self, status, text):
        super().__init__(f"{text} (status {status})")
        self.status = status


def request(url, method, path, params=None, body=None):
    full = url + path
    if params is not None:
        full += "?" + urllib.parse.urlencode(params)
    data, headers = None, {}
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(full, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


class Worker:
    def __init__(self, url, stage, nickname):
        self.url = url.rstrip("/")
        self.stage = stage.lower()[0]  # as the upstream init() does
        status, text = request(self.url, "GET", "/api/new", params={"nickname": nickname, "stage": self.stage})
        self.check(status, text)
        data = json.loads(text)
        self.token = data["token"]
        self.display_name = data["display_name"]
        self.project = data["project"]
        self.stage_name = data["stage_name"]
        self.job = self.job_id = None

    def check(self, status, text):
        if status != 200:
            raise TrackerError(status, text)

    def post(self, path, body):
        status, text = request(self.url, "POST", path, body=body)
        self.check(status, text)
        return text

    def job_count(self):
        status, text = request(self.url, "GET", "/api/jobCount", params={"stage": self.stage})
        self.check(status, text)
        return int(text)

    def new_job(self):
        data = json.loads(self.post("/api/newJob", {"token": self.token}))
        self.job, self.job_id = data["data"], data["number"]
        if self.job.startswith(JSON_PREFIX):
            self.job = json.loads(self.job[len(JSON_PREFIX):])

    def complete_job(self, data):
        if isinstance(data, (dict, list)):
            data = JSON_PREFIX + json.dumps(data)
        self.job = self.job_id = None
        self.post("/api/completeJob", {"token": self.token, "data": data})

    def log(self, progress):
        self.post("/api/updateProgress", {"token": self.token, "progress": progress})

    def is_alive(self):
        return "True" in self.post("/api/validateWorker", {"token": self.token})

    def flag_invalid_data(self):
        self.job = self.job_id = None
        self.post("/api/flagInvalidData", {"token": self.token})

    def bye(self):
        request(self.url, "POST", "/api/bye", body={"token": self.token})


def loop(url, stage, nickname, flag_first):
    w = Worker(url, stage, nickname)
    done, inputs, flagged = [], {}, False
    while w.is_alive():
        if w.job_count() == 0:
            break
        w.new_job()
        w.log(f"working on job {w.job_id}")
        if flag_first and not flagged:
            flagged = True
            w.flag_invalid_data()
            continue
        number = w.job_id
        inputs[number] = w.job
        if stage == "a":
            w.complete_job({"job": number, "input": w.job, "note": "caf\u00e9"})
        else:
            w.complete_job("checked:" + json.dumps(w.job, sort_keys=True))
        done.append(number)
    w.bye()
    return w, sorted(done), inputs


def main():
    url = sys.argv[1]
    a, done_a, _ = loop(url, "a", "alice", True)
    b, done_b, inputs_b = loop(url, "b", "bob", False)
    # Stage b must have been served stage a's output, decoded back into a dict.
    for number, job in inputs_b.items():
        if not (isinstance(job, dict) and job.get("job") == number and job.get("note") == "caf\u00e9"):
            raise SystemExit(f"stage b job {number} got {job!r}, not stage a's output")
    try:
        Worker(url, "GPU", "x")  # the upstream init() sends the first letter: 'g'
        gpu = "accepted"
    except TrackerError as e:
        gpu = f"{e.status} {e}"
    print(json.dumps({
        "project": a.project, "stage_names": [a.stage_name, b.stage_name],
        "done_a": done_a, "done_b": done_b, "init_gpu": gpu,
        "left": [a.job_count(), b.job_count()],
    }))


if __name__ == "__main__":
    main()
