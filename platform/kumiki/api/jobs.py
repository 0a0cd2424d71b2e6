"""Background job status: progress, result and error of the caller's jobs."""
from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select

from kumiki.api.common import actor, db
from kumiki.errors import NotFound
from kumiki.model import Job

PREFIX = "/jobs"
blp = Blueprint("jobs", __name__, description="バックグラウンドジョブ / background jobs")

STATUSES = ("queued", "running", "done", "failed")


class JobOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    progress = fields.Float(metadata={"description": "0..1"})
    message = fields.String()
    result = fields.Raw(allow_none=True)
    error = fields.String(allow_none=True)
    app_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class JobListArgs(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))
    status = fields.String(validate=validate.OneOf(STATUSES))
    app_id = fields.Integer()


class JobList(Schema):
    jobs = fields.List(fields.Nested(JobOut))
    total = fields.Integer()


def visible_job(job_id: int) -> Job:
    """The job if the caller created it or is an admin; 404 otherwise (no existence leak)."""
    user = actor()
    job = db().get(Job, job_id)
    if job is None or (job.created_by != user.id and not user.is_admin):
        raise NotFound("not_found")
    return job


@blp.route("/<int:job_id>")
@blp.response(200, JobOut)
def get_job(job_id):
    return visible_job(job_id)


@blp.route("")
@blp.arguments(JobListArgs, location="query")
@blp.response(200, JobList)
def list_jobs(args):
    where = [Job.created_by == actor().id]
    if args.get("status"):
        where.append(Job.status == args["status"])
    if args.get("app_id") is not None:
        where.append(Job.app_id == args["app_id"])
    session = db()
    total = session.scalar(select(func.count()).select_from(Job).where(*where))
    jobs = session.scalars(select(Job).where(*where).order_by(Job.created_at.desc(), Job.id.desc())
                           .limit(args["limit"]).offset(args["offset"])).all()
    return {"jobs": jobs, "total": total}
