"""A worker program for dcproxy's chaos test, written like the seed README's loop with the
unchanged upstream client. It computes STAGE:input for every job, logs each computation to
LOG before completing it, and lets every other exception end the program with its traceback
(the test restarts it and classifies the traceback).

usage: chaos_worker.py UPSTREAM_DIR URL STAGE LOG
"""
import json
import sys
import time

sys.path.insert(0, sys.argv[1])
import distcompute_client as dc  # noqa: E402
from distcompute_client.errors import ZeroJobError  # noqa: E402

url, stage, log = sys.argv[2], sys.argv[3], sys.argv[4]

client = dc.init(url=url, stage=stage, nickname="chaos-" + stage, verbose=False)
while client.is_alive():
    # Wait for new jobs to appear
    if client.job_count() == 0:
        time.sleep(0.1)
        continue
    try:
        client.new_job()
    except ZeroJobError:
        continue  # another worker took the last open job between the count and the claim
    job_data = client.job
    job_id = client.job_id
    output = stage.upper() + ":" + job_data
    with open(log, "a") as f:
        f.write(json.dumps([stage, job_id, output]) + "\n")
    client.log("job %d: computed" % job_id)
    client.complete_job(output)
client.bye()
