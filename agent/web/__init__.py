"""`repro serve`: a small local web UI to read reports and review runs (FastAPI + Jinja2).

app.py holds the routes; runs.py reads run directories; code.py renders the code browser and
the diffs between debug iterations. Templates and static assets ship inside this package (no
CDN: the machine may be offline). The app binds to 127.0.0.1 only and refuses other hosts.
"""
