"""The clinic staff's web app, under /app: server-rendered pages (Jinja2, with htmx for
the parts that change in place) over the same services as the API. Staff log in with
a password; `auth` says who is asking and guards every form against forgery."""
