"""Times N job cycles of the seed README's loop with the unchanged upstream client (is_alive,
job_count, new_job, log, complete_job) and prints the seconds they took (start-up excluded).

usage: cycles.py UPSTREAM_DIR URL N   (URL "env": $DISTCOMPUTE_URL, as dcproxy -- CMD sets it)
"""
import os
import sys
import time

sys.path.insert(0, sys.argv[1])
import distcompute_client as dc  # noqa: E402

url, n = sys.argv[2], int(sys.argv[3])
if url == "env":
    url = os.environ["DISTCOMPUTE_URL"]
client = dc.init(url=url, stage="a", nickname="bench", verbose=False)
done = 0
start = time.perf_counter()
while done < n and client.is_alive():
    if client.job_count() == 0:
        break
    client.new_job()
    job = client.job
    client.log("Analysed 1 / 1 images")
    client.complete_job({"file": "s3://out.tar", "input": job})
    done += 1
elapsed = time.perf_counter() - start
client.bye()
print(done, elapsed)
