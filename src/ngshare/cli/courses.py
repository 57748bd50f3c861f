"""Course management against a running server: courses, rosters, assignments, submissions.

These commands talk HTTP with the caller's token, so they work from any
notebook terminal under JupyterHub (URL and token are found in the
environment) as well as from an admin's laptop (`--url`, `--token`).
Every error is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ngshare.cli.roster_csv import RosterRow, read_roster
from ngshare.client import ClientError, NgshareClient
from ngshare.client.discover import api_token, service_url
from ngshare.client.v1 import V1Client
from ngshare.domain.policies import parse_duration, show_duration
from ngshare.exchange.progress import human

Handler = Callable[[argparse.Namespace], int]


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        help="Service URL with its prefix [env NGSHARE_URL; default: "
        "derived from JUPYTERHUB_API_URL]",
    )
    group.add_argument("--token", help="API token [env NGSHARE_TOKEN, JUPYTERHUB_API_TOKEN]")
    group.add_argument("--user", help="User name, for a server in --dev mode only")
    parser.add_argument("--json", action="store_true", help="Print JSON for scripts")


def _command(
    parent: argparse._SubParsersAction, name: str, text: str, example: str, run: Handler
) -> argparse.ArgumentParser:
    parser = parent.add_parser(
        name,
        help=text,
        description=f"{text}\n\nExample: {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_flags(parser)
    parser.set_defaults(handler=_guarded(run))
    return parser


def _guarded(run: Handler) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except ClientError as exc:
            print(f"ngshare: error: {exc.message}", file=sys.stderr)
            return 1

    return handler


def _v1(args: argparse.Namespace) -> V1Client:
    return V1Client(service_url(args.url), api_token(args.token), user=args.user)


def _v2(args: argparse.Namespace) -> NgshareClient:
    return NgshareClient(service_url(args.url), api_token(args.token), user=args.user)


def _names(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--first-name", default="", help="First name (default: empty)")
    parser.add_argument("--last-name", default="", help="Last name (default: empty)")
    parser.add_argument("--email", default="", help="E-mail address (default: empty)")


def _print(args: argparse.Namespace, data: Any, rows: list[list[str]], header: list[str]) -> int:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    elif rows:
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print(
                "  ".join(
                    str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
    return 0


def _done(args: argparse.Namespace, message: str, data: dict | None = None) -> int:
    print(json.dumps(data or {"ok": True, "message": message}) if args.json else message)
    return 0


def _warn_case(names: Sequence[str]) -> None:
    upper = [n for n in names if n != n.lower()]
    if upper:
        print(
            "ngshare: warning: JupyterHub normally lower-cases user names; these have capitals: "
            + ", ".join(upper),
            file=sys.stderr,
        )


# Gradebook


def _gradebook(*command: str) -> None:
    """Run `nbgrader db student ...` without a shell; ClientError when it fails."""
    if shutil.which("nbgrader") is None:
        raise ClientError("--gradebook needs the `nbgrader` command on PATH")
    result = subprocess.run(
        ["nbgrader", "db", "student", *command],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ClientError(f"nbgrader db student {command[0]} failed: {last[0]}")


def _gradebook_add(row: RosterRow) -> None:
    options = [
        ("--first-name", row.first_name),
        ("--last-name", row.last_name),
        ("--email", row.email),
    ]
    flags = [part for flag, value in options if value for part in (flag, value)]
    _gradebook("add", *flags, "--", row.username)


# Commands


def list_courses(args: argparse.Namespace) -> int:
    with _v2(args) as client:
        courses = client.courses()
    rows = [[c["name"], c["role"], _stored(c)] for c in courses]
    return _print(args, courses, rows, ["COURSE", "ROLE", "STORED"])


def _stored(course: dict) -> str:
    """`1.2 GiB of 200.0 GiB` (what the quota counts), or "-" for a student."""
    if course.get("stored_bytes") is None:
        return "-"
    quota = course.get("quota_bytes")
    limit = f" of {human(quota)}" if quota else " (no quota)"
    return human(course["stored_bytes"]) + limit


def create_course(args: argparse.Namespace) -> int:
    _warn_case(args.instructor)
    with _v1(args) as client:
        client.call(
            "POST", "course", args.course, data={"instructors": json.dumps(args.instructor)}
        )
    return _done(args, f"created course {args.course}")


def delete_course(args: argparse.Namespace) -> int:
    if not args.yes:
        raise ClientError(f"deleting {args.course} removes all its submissions; add --yes")
    with _v1(args) as client:
        client.call("DELETE", "course", args.course)
    return _done(args, f"deleted course {args.course}")


def _person_data(args: argparse.Namespace) -> dict[str, str]:
    return {"first_name": args.first_name, "last_name": args.last_name, "email": args.email}


def add_instructor(args: argparse.Namespace) -> int:
    _warn_case([args.username])
    with _v1(args) as client:
        client.call("POST", "instructor", args.course, args.username, data=_person_data(args))
    return _done(args, f"{args.username} is an instructor of {args.course}")


def remove_instructor(args: argparse.Namespace) -> int:
    with _v1(args) as client:
        client.call("DELETE", "instructor", args.course, args.username)
    return _done(args, f"removed instructor {args.username} from {args.course}")


def _people(args: argparse.Namespace, kind: str) -> int:
    with _v1(args) as client:
        people = client.call("GET", kind + "s", args.course)[kind + "s"]
    rows = [
        [p["username"], p["first_name"] or "", p["last_name"] or "", p["email"] or ""]
        for p in people
    ]
    return _print(args, people, rows, ["USERNAME", "FIRST NAME", "LAST NAME", "EMAIL"])


def add_student(args: argparse.Namespace) -> int:
    _warn_case([args.username])
    with _v1(args) as client:
        client.call("POST", "student", args.course, args.username, data=_person_data(args))
    if args.gradebook:
        _gradebook_add(RosterRow(0, args.username, args.first_name, args.last_name, args.email))
    return _done(args, f"{args.username} is a student of {args.course}")


def remove_students(args: argparse.Namespace) -> int:
    with _v1(args) as client:
        for username in args.usernames:
            if args.gradebook:  # first, so a gradebook refusal leaves the roster as it was
                _gradebook("remove", *(["--force"] if args.force else []), "--", username)
            client.call("DELETE", "student", args.course, username)
            if not args.json:
                print(f"removed student {username} from {args.course}")
    return _done(args, "", {"ok": True, "removed": args.usernames}) if args.json else 0


def import_students(args: argparse.Namespace) -> int:
    roster = read_roster(Path(args.csv_file))
    report = [
        {"row": p.row, "username": p.username, "success": False, "message": p.problem}
        for p in roster.problems
    ]
    if roster.rows:
        _warn_case([r.username for r in roster.rows])
        payload = [r.as_v1() for r in roster.rows]
        with _v1(args) as client:
            status = client.call(
                "POST", "students", args.course, data={"students": json.dumps(payload)}
            )["status"]
        for row, result in zip(roster.rows, status, strict=True):
            entry = {
                "row": row.row,
                "username": row.username,
                "success": result["success"],
                "message": result.get("message", "added or updated"),
            }
            if result["success"] and args.gradebook:
                _gradebook_add(row)
            report.append(entry)
    report.sort(key=lambda entry: entry["row"])
    failed = [entry for entry in report if not entry["success"]]
    if args.json:
        print(json.dumps({"ok": not failed, "rows": report}, indent=2))
    else:
        for entry in report:
            mark = "ok " if entry["success"] else "ERR"
            print(f"{mark} row {entry['row']}: {entry['username'] or '-'}: {entry['message']}")
        print(f"{len(report) - len(failed)} imported, {len(failed)} failed")
    return 1 if failed else 0


def list_assignments(args: argparse.Namespace) -> int:
    with _v2(args) as client:
        items = client.assignments(args.course)
    rows = [
        [
            a["name"],
            str(a["version"]),
            str(a["released_at"])[:19],
            a.get("effective_state", ""),
            a.get("due") or "",
            *([a["me"]["status_text"]] if a.get("me") else []),
            str(a["file_count"]),
            str(a["total_size"]),
        ]
        for a in items
    ]
    mine = ["YOU"] if any(a.get("me") for a in items) else []
    header = ["ASSIGNMENT", "VERSION", "RELEASED", "STATE", "DUE", *mine, "FILES", "BYTES"]
    return _print(args, items, rows, header)


def list_submissions(args: argparse.Namespace) -> int:
    with _v2(args) as client:
        items = client.submissions(args.course, args.assignment, latest=not args.all)
    rows = [
        [
            s["student"],
            s["timestamp"],
            str(s["release_version"] or ""),
            _on_time(s),
            "yes" if s["feedback"] else "no",
        ]
        for s in items
    ]
    header = ["STUDENT", "SUBMITTED (UTC)", "VERSION", "ON TIME", "FEEDBACK"]
    return _print(args, items, rows, header)


def _on_time(submission: dict) -> str:
    if submission.get("on_time") is None:
        return "-"
    if submission["on_time"]:
        return "yes"
    return f"late {show_duration(submission['late_by_seconds'] or 0)}"


# Course policies (docs/policies.md)


def _none_or(value: str | None, convert: Callable[[str], Any]) -> Any:
    return None if value is None or value.lower() == "none" else convert(value)


def _seconds(value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ClientError(str(exc)) from None


def _show_settings(args: argparse.Namespace, data: dict) -> int:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    late = data.get("late_window_seconds")
    lines = [
        ("assignment", data["name"]),
        ("state", data["effective_state"]),
        ("visible from", data.get("visible_at") or "at release"),
        ("version", data.get("version") or "not released"),
        ("deadline", data.get("due") or "none"),
        (
            "late submissions",
            "accepted" if late is None else "refused" if late == 0 else
            f"accepted for {show_duration(late)}",
        ),
        ("submission limit", data.get("max_submissions") or "none"),
        ("solutions", f"{data['solutions']} ({'stored' if data['has_solutions'] else 'none'})"),
    ]  # fmt: skip
    for extension in data.get("extensions", []):
        lines.append((f"extension {extension['student']}", extension["due"]))
    if data.get("me"):
        lines.append(("you", data["me"]["status_text"]))
    width = max(len(k) for k, _v in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0


def show_settings(args: argparse.Namespace) -> int:
    with _v2(args) as client:
        return _show_settings(args, client.settings(args.course, args.assignment))


def set_settings(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.state:
        changes["state"] = args.state
    if args.visible_at is not None:
        changes["visible_at"] = _none_or(args.visible_at, str)
    if args.due is not None:
        changes["due_at"] = _none_or(args.due, str)
    if args.timezone is not None:
        changes["timezone"] = _none_or(args.timezone, str)
    if args.late_window is not None:
        changes["late_window_seconds"] = _none_or(args.late_window, _seconds)
    if args.max_submissions is not None:
        changes["max_submissions"] = _none_or(args.max_submissions, int)
    if args.solutions:
        changes["solutions"] = args.solutions.replace("-", "_")
    if not changes:
        raise ClientError("nothing to change: give at least one option (see --help)")
    with _v2(args) as client:
        return _show_settings(args, client.change_settings(args.course, args.assignment, **changes))


def set_deadline(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {"due_at": _none_or(args.due, str)}
    if args.timezone is not None:
        changes["timezone"] = _none_or(args.timezone, str)
    if args.late_window is not None:
        changes["late_window_seconds"] = _none_or(args.late_window, _seconds)
    with _v2(args) as client:
        return _show_settings(args, client.change_settings(args.course, args.assignment, **changes))


def _set_state(state: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        changes: dict[str, Any] = {"state": state}
        if state == "released":
            changes["visible_at"] = getattr(args, "at", None)
        with _v2(args) as client:
            data = client.change_settings(args.course, args.assignment, **changes)
        if args.json:
            return _show_settings(args, data)
        return _done(args, f"{args.assignment} of {args.course} is now {data['effective_state']}")

    return run


def extend(args: argparse.Namespace) -> int:
    if (args.until is None) == (args.by is None):
        raise ClientError("give either --until TIME or --by DURATION")
    extra = None if args.by is None else _seconds(args.by)
    with _v2(args) as client:
        data = client.extend(
            args.course, args.assignment, args.student, due_at=args.until, extra_seconds=extra
        )
    return _done(args, f"{args.student} is due {data['due']} for {args.assignment}", data)


def unextend(args: argparse.Namespace) -> int:
    with _v2(args) as client:
        client.remove_extension(args.course, args.assignment, args.student)
    return _done(args, f"removed the extension of {args.student} for {args.assignment}")


def solutions(args: argparse.Namespace) -> int:
    if args.directory is None and args.to is None and not args.withdraw:
        raise ClientError("give a DIRECTORY to upload, --to WHO, or --withdraw")
    with _v2(args) as client:
        if args.withdraw:
            client.withdraw_solutions(args.course, args.assignment)
            return _done(args, f"withdrew the solutions of {args.assignment}")
        if args.directory is not None:
            root = Path(args.directory)
            if not root.is_dir():
                raise ClientError(f"{root} is not a directory")
            client.put_solutions(args.course, args.assignment, root)
        if args.to is not None:
            client.change_settings(
                args.course, args.assignment, solutions=args.to.replace("-", "_")
            )
        data = client.settings(args.course, args.assignment)
    who = {
        "none": "nobody yet",
        "all": "every student",
        "after_due": "each student after their deadline",
    }
    return _done(
        args,
        f"solutions of {args.assignment}: {who[data['solutions']]} may fetch them",
        {"ok": True, "solutions": data["solutions"], "has_solutions": data["has_solutions"]},
    )


def withdraw_feedback(args: argparse.Namespace) -> int:
    with _v2(args) as client:
        made = client.student_submissions(args.course, args.assignment, args.student)
        with_feedback = [s for s in made if s["feedback"]]
        if args.submission is not None:
            chosen = [s for s in with_feedback if s["id"] == args.submission]
        else:
            chosen = with_feedback[-1:]
        if not chosen:
            raise ClientError(
                f"{args.student} has no released feedback on {args.assignment}"
                + (f" for submission {args.submission}" if args.submission is not None else "")
            )
        client.withdraw_feedback(args.course, args.assignment, args.student, chosen[0]["id"])
    return _done(
        args,
        f"withdrew the feedback of {args.student} on {args.assignment} "
        f"(submission of {chosen[0]['timestamp']} UTC)",
        {"ok": True, "submission_id": chosen[0]["id"]},
    )


def register(commands: argparse._SubParsersAction) -> None:
    _command(
        commands,
        "courses",
        "List the courses you teach or take (admins: all).",
        "ngshare courses --json",
        list_courses,
    )

    course = commands.add_parser("course", help="Create or delete a course (admins).")
    sub = course.add_subparsers(dest="action", required=True)
    p = _command(
        sub,
        "create",
        "Create a course.",
        "ngshare course create cs101 --instructor alice",
        create_course,
    )
    p.add_argument("course")
    p.add_argument("--instructor", action="append", default=[], help="May be repeated")
    p = _command(
        sub,
        "delete",
        "Delete a course with everything in it.",
        "ngshare course delete cs101 --yes",
        delete_course,
    )
    p.add_argument("course")
    p.add_argument("--yes", action="store_true", help="Confirm the deletion")

    people = commands.add_parser("instructor", help="Manage a course's instructors.")
    sub = people.add_subparsers(dest="action", required=True)
    p = _command(
        sub,
        "add",
        "Add an instructor, or update one's names (admins; an instructor may update himself).",
        "ngshare instructor add cs101 alice --first-name Alice",
        add_instructor,
    )
    p.add_argument("course")
    p.add_argument("username")
    _names(p)
    p = _command(
        sub,
        "remove",
        "Remove an instructor (admins).",
        "ngshare instructor remove cs101 alice",
        remove_instructor,
    )
    p.add_argument("course")
    p.add_argument("username")
    p = _command(
        sub,
        "list",
        "List a course's instructors.",
        "ngshare instructor list cs101",
        lambda a: _people(a, "instructor"),
    )
    p.add_argument("course")

    students = commands.add_parser("student", help="Manage a course's students.")
    sub = students.add_subparsers(dest="action", required=True)
    p = _command(
        sub,
        "add",
        "Add a student, or update one's names (instructors).",
        "ngshare student add cs101 bob --first-name Bob --gradebook",
        add_student,
    )
    p.add_argument("course")
    p.add_argument("username")
    _names(p)
    p.add_argument(
        "--gradebook",
        action="store_true",
        help="Also run `nbgrader db student add` (in the course directory)",
    )
    p = _command(
        sub,
        "remove",
        "Remove students; their submissions are kept.",
        "ngshare student remove cs101 bob carol",
        remove_students,
    )
    p.add_argument("course")
    p.add_argument("usernames", nargs="+")
    p.add_argument("--gradebook", action="store_true", help="Also run `nbgrader db student remove`")
    p.add_argument(
        "--force", action="store_true", help="With --gradebook: remove even students with grades"
    )
    p = _command(
        sub,
        "import",
        "Add or update students from a CSV file with the columns "
        "student_id, first_name, last_name, email (any order; others ignored).",
        "ngshare student import cs101 roster.csv",
        import_students,
    )
    p.add_argument("course")
    p.add_argument("csv_file")
    p.add_argument(
        "--gradebook",
        action="store_true",
        help="Also add each imported student to the nbgrader gradebook",
    )
    p = _command(
        sub,
        "list",
        "List a course's students (instructors).",
        "ngshare student list cs101 --json",
        lambda a: _people(a, "student"),
    )
    p.add_argument("course")

    p = _command(
        commands,
        "assignments",
        "List a course's released assignments.",
        "ngshare assignments cs101",
        list_assignments,
    )
    p.add_argument("course")
    p = _command(
        commands,
        "submissions",
        "List who submitted an assignment (instructors).",
        "ngshare submissions cs101 ps1 --all",
        list_submissions,
    )
    p.add_argument("course")
    p.add_argument("assignment")
    p.add_argument("--all", action="store_true", help="Every submission, not only the newest")

    _register_policies(commands)


def _register_policies(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser(
        "assignment", help="An assignment's lifecycle, deadline, extensions and solutions."
    )
    sub = group.add_subparsers(dest="action", required=True)

    def target(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("course")
        parser.add_argument("assignment")

    p = _command(
        sub, "show", "Show an assignment's policies and extensions.",
        "ngshare assignment show cs101 ps1", show_settings,
    )  # fmt: skip
    target(p)
    p = _command(
        sub,
        "set",
        "Change an assignment's policies (instructors); `none` clears a value. Times "
        "without an offset are in the assignment's time zone.",
        "ngshare assignment set cs101 ps1 --due '2026-12-01 17:00' --timezone Europe/Paris "
        "--late-window 24h --max-submissions 5",
        set_settings,
    )
    target(p)
    p.add_argument("--state", choices=["draft", "released", "closed", "archived"])
    p.add_argument("--visible-at", metavar="TIME", help="Students see it from then on")
    p.add_argument("--due", metavar="TIME", help="Deadline, e.g. '2026-12-01 17:00'")
    p.add_argument("--timezone", metavar="TZ", help="IANA time zone, e.g. Europe/Paris")
    p.add_argument(
        "--late-window",
        metavar="DURATION",
        help="Refuse submissions this long after the deadline (0: at once; none: never)",
    )
    p.add_argument("--max-submissions", metavar="N", help="Most submissions per student")
    p.add_argument("--solutions", choices=["none", "all", "after-due"], help="Who gets them")
    p = _command(
        sub,
        "deadline",
        "Set (or with `none`, clear) the deadline.",
        "ngshare assignment deadline cs101 ps1 '2026-12-01 17:00' --timezone Europe/Paris",
        set_deadline,
    )
    target(p)
    p.add_argument("due", metavar="TIME")
    p.add_argument("--timezone", metavar="TZ", help="IANA time zone of TIME and of the display")
    p.add_argument("--late-window", metavar="DURATION", help="e.g. 24h; 0: no late submissions")
    for name, state, text in [
        ("draft", "draft", "Hide an assignment from students (instructors still see it)."),
        ("release", "released", "Show an assignment to students, now or --at a time."),
        ("close", "closed", "Accept no more submissions (students still see it)."),
        ("reopen", "released", "Accept submissions again."),
        ("archive", "archived", "Close and hide from students' lists; their work stays theirs."),
    ]:
        p = _command(sub, name, text, f"ngshare assignment {name} cs101 ps1", _set_state(state))
        target(p)
        if name == "release":
            p.add_argument("--at", metavar="TIME", help="Scheduled release time")
    p = _command(
        sub,
        "extend",
        "Give a student their own deadline; their submissions keep the on-time flag they got.",
        "ngshare assignment extend cs101 ps1 bob --by 48h",
        extend,
    )
    target(p)
    p.add_argument("student")
    p.add_argument("--until", metavar="TIME", help="The student's deadline")
    p.add_argument("--by", metavar="DURATION", help="Or: this long after the deadline")
    p = _command(
        sub,
        "unextend",
        "Remove a student's extension.",
        "ngshare assignment unextend cs101 ps1 bob",
        unextend,
    )
    target(p)
    p.add_argument("student")
    p = _command(
        sub,
        "solutions",
        "Upload solutions and choose who may fetch them (students fetch them with "
        "`nbgrader fetch_feedback`).",
        "ngshare assignment solutions cs101 ps1 source/ps1 --to after-due",
        solutions,
    )
    target(p)
    p.add_argument("directory", nargs="?", help="Directory to upload (replaces earlier ones)")
    p.add_argument("--to", choices=["none", "all", "after-due"], help="Who may fetch them")
    p.add_argument("--withdraw", action="store_true", help="Delete the stored solutions")

    feedback = commands.add_parser("feedback", help="Released feedback (instructors).")
    sub = feedback.add_subparsers(dest="action", required=True)
    p = _command(
        sub,
        "withdraw",
        "Withdraw the feedback released on a student's newest graded submission "
        "(or --submission ID).",
        "ngshare feedback withdraw cs101 ps1 bob",
        withdraw_feedback,
    )
    target(p)
    p.add_argument("student")
    p.add_argument("--submission", type=int, metavar="ID", help="A submission id (`--json` lists)")
