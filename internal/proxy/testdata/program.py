"""A worker program that dcproxy runs itself (-- CMD) in its tests: the seed README's loop with
the unchanged upstream client, at the URL dcproxy gives in DISTCOMPUTE_URL.

usage: program.py UPSTREAM_DIR DIR MODE
  MODE "die-once": the first run (no DIR/died file) exits 1 while holding its first job;
                   later runs complete jobs until the stage is empty, then exit 0.
  MODE "poison":   a job whose data is "poison" crashes the program (exit 3); others are
                   completed; exits 0 when new_job finds no job.
Every job received is appended to DIR/received as "pid job data".
"""
import os
import sys

sys.path.insert(0, sys.argv[1])
import distcompute_client as dc  # noqa: E402
from distcompute_client.errors import ZeroJobError  # noqa: E402

d, mode = sys.argv[2], sys.argv[3]
client = dc.init(url=os.environ["DISTCOMPUTE_URL"], stage="a", nickname="program", verbose=False)
while client.is_alive():
    if client.job_count() == 0:
        break
    try:
        client.new_job()
    except ZeroJobError:
        break
    with open(os.path.join(d, "received"), "a") as f:
        f.write("%d %d %s\n" % (os.getpid(), client.job_id, client.job))
    if mode == "die-once" and not os.path.exists(os.path.join(d, "died")):
        open(os.path.join(d, "died"), "w").close()
        os._exit(1)
    if mode == "poison" and client.job == "poison":
        os._exit(3)
    client.complete_job("done:" + client.job)
client.bye()
