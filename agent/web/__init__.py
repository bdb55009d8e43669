"""`repro serve`: a small local web UI to read reports and review runs (FastAPI + Jinja2).

app.py holds the routes; runs.py reads run directories (status, live progress from the
checkpoint); code.py renders the code browser and the trajectory: every turn of the coding
agent's tool loop with the diff of the files each step changed. Templates and static assets
ship inside this package (no CDN: the machine may be offline). The app binds to 127.0.0.1 only
and refuses other hosts.
"""
