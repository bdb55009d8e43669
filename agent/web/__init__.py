"""`repro serve`: a small local web UI to submit papers, follow runs live, read reports and review
runs (FastAPI + Jinja2).

app.py holds the routes; submit.py turns the "New replication" form into a checked run; jobs.py
is the queue (on disk) that starts each run as its own process (worker.py) and cancels or resumes
it; runs.py reads run directories (status, live progress from the checkpoint and events.jsonl);
code.py renders the code browser and the trajectory: every turn of the coding agent's tool loop
with the diff of the files each step changed. Templates and static assets ship inside this
package (no CDN: the machine may be offline). The app binds to 127.0.0.1 only and refuses other
hosts, cross-site posts and posts without the session's token.
"""
