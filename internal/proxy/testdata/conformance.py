"""Runs the unchanged upstream client (distcompute_client 1.0.0) through the seed README's
worker loop, plus the error cases around it, and prints one JSON line per call: the call, the
exception class it raised ("ok" if none) and what it returned or the exception's message.
dcproxy's tests run it once against the tracker and once through dcproxy and compare.

usage: conformance.py UPSTREAM_DIR URL QUIRKS(0|1)
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import distcompute_client as dc  # noqa: E402

url, quirks = sys.argv[2], sys.argv[3] == "1"


def rec(call, fn):
    try:
        out = fn()
        print(json.dumps([call, "ok", out]), flush=True)
        return out
    except Exception as e:  # the class and the message are what is compared
        print(json.dumps([call, type(e).__name__, str(e)]), flush=True)
        return e


# init errors: the upstream init() sends the first letter of "GPU"; stage c is disabled.
rec("init GPU", lambda: dc.init(url=url, stage="GPU", verbose=False) and None)
rec("init c", lambda: dc.init(url=url, stage="c", verbose=False) and None)

# Stage a: the README's loop, written as the README writes it.
client = dc.init(url=url, stage="a", nickname="Cluster 2 on AWS", verbose=False)
rec("names", lambda: [client.display_name, client.project, client.stage_name])
rec("complete without a job", lambda: client.complete_job("x"))
rec("flag without a job", lambda: client.flag_invalid_data())
rec("log 256 characters", lambda: client.log("x" * 256))
flagged = False
while client.is_alive():
    # Wait for new jobs to appear (the README sleeps 30 s; here the stage is done)
    if client.job_count() == 0:
        break
    client.new_job()
    job_data = client.job
    job_id = client.job_id
    rec("new_job", lambda: [job_id, job_data])
    client.log("Analysed %d / 1 images" % job_id)  # Updates the worker's progress to the server
    if not flagged:  # Report data as invalid to the tracker, look for a new job.
        flagged = True
        rec("flag_invalid_data", lambda: client.flag_invalid_data())
        continue
    output = {"file": "s3://job_%d.tar" % job_id, "input": job_data, "note": "caf\u00e9"}
    rec("complete_job", lambda: client.complete_job(output))
rec("new_job on an empty stage", lambda: client.new_job())
rec("job_count a", lambda: client.job_count())
client.bye()  # Disconnect from tracker.
rec("is_alive after bye", lambda: client.is_alive())
rec("new_job after bye", lambda: client.new_job())
rec("log after bye", lambda: client.log("late"))
rec("complete after bye", lambda: client.complete_job("late"))
rec("bye after bye", lambda: client.bye())

# Stage b: the same loop. The upstream tracker (quirks) serves null data there, on which
# new_job crashes after the tracker assigned the job; flagging it 5 times hits the 5th-flag bug.
client = dc.init(url=url, stage="b", nickname="Cluster 3", verbose=False)
rec("names b", lambda: [client.display_name, client.project, client.stage_name])
while client.is_alive():
    if client.job_count() == 0:
        break
    if quirks:
        for i in range(5):
            rec("new_job b (null data)", lambda: client.new_job())
            rec("flag b %d" % (i + 1), lambda: client.flag_invalid_data())
        break
    client.new_job()
    job_data = client.job
    job_id = client.job_id
    rec("new_job b", lambda: [job_id, job_data])
    rec("complete_job b", lambda: client.complete_job("checked:" + json.dumps(job_data, sort_keys=True)))
rec("job_count b", lambda: client.job_count())
client.bye()
rec("job_count b after bye", lambda: client.job_count())
