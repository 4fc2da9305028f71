"""Database work and password hashing never run on the event loop (bot/gateway/store.py): in the
gateway, the console and the inbound API, an async function hands them to `Crm.run` as a sync
function that takes the session, and touches no session, engine or hash itself.

Read from the source, nothing is imported. In an async function's own body (a nested def or lambda
is work handed to a thread, not run there) none of these may appear:
- a session: the name `session` or a `session=` argument (every CRM function takes it by that name);
- opening the database or hashing: `session_scope`, `make_engine`, `engine_for`, `create_engine`,
  `sessionmaker`, `Session(...)`, `….begin()`/`….connect()` on an engine or session factory,
  `hash_password`, `verify_password`, `PasswordHasher`;
- a direct call of a sync function of the same module that does any of that or takes a `session`;
- a thread of its own (`asyncio.to_thread`, `run_in_threadpool`, `run_in_executor`): there is one
  way to leave the loop for database work, `Crm.run`. The few threads for other blocking work are
  listed in OTHER_THREADS with what they do, and each entry must still be true.
Nor may a sync function be a route's endpoint and touch the database: Starlette would run it in
its own thread pool, a second way around `Crm.run`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("bot/gateway", "bot/console", "bot/api")
THE_WAY = "bot/gateway/store.py"  # Crm.run itself
OPENERS = frozenset(
    {
        "session_scope",
        "make_engine",
        "engine_for",
        "create_engine",
        "sessionmaker",
        "Session",
        "hash_password",
        "verify_password",
        "PasswordHasher",
    }
)
THREADS = frozenset({"to_thread", "run_in_threadpool", "run_in_executor"})
# Blocking work that is not the database's, with the thread it may have: (file, async function).
OTHER_THREADS = {
    ("bot/gateway/app.py", "health"): "reads the supervisor's state files",
    ("bot/console/app.py", "home"): "reads the supervisor's state files",
    ("bot/gateway/email_outlet.py", "send"): "writes a mail file into the local mailbox folder",
}


def called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def receiver(call: ast.Call) -> str:
    """The dotted text of what a method is called on (`self.factory` for `self.factory.begin()`)."""
    func = call.func
    return ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""


def own_body(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes a function runs itself: nested functions and lambdas are left out."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def direct_trouble(function: ast.AST) -> list[str]:
    """Session, engine, hashing or own threads in the function's own body."""
    found = []
    for node in own_body(function):
        if isinstance(node, ast.Name) and node.id == "session":
            found.append("uses a session")
        elif isinstance(node, ast.keyword) and node.arg == "session":
            found.append("passes a session")
        elif isinstance(node, ast.Call):
            name = called_name(node)
            if name in OPENERS:
                found.append(f"calls {name}")
            elif name in ("begin", "connect") and any(w in receiver(node) for w in ("engine", "factory")):
                found.append(f"opens {receiver(node)}.{name}()")
            elif name in THREADS:
                found.append(f"starts a thread ({name})")
    return found


def takes_session(function: ast.FunctionDef) -> bool:
    arguments = function.args
    return any(a.arg == "session" for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs])


def database_functions(tree: ast.Module) -> set[str]:
    """The module's top-level sync functions that take a session or touch the database (directly
    or through another of them)."""
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    touching = {
        name
        for name, node in functions.items()
        if takes_session(node) or any(not t.startswith("starts") for t in direct_trouble(node))
    }
    grew = True
    while grew:
        grew = False
        for name, node in functions.items():
            if name in touching:
                continue
            calls = {called_name(n) for n in own_body(node) if isinstance(n, ast.Call)}
            if calls & touching:
                touching.add(name)
                grew = True
    return touching


def async_functions(tree: ast.Module) -> Iterator[ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef):
            yield node


def sync_endpoints(tree: ast.Module) -> Iterator[ast.FunctionDef]:
    """Sync functions given to a Route or WebSocketRoute as the endpoint (`self.x`: a method)."""
    members = {id(n) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for n in c.body}
    methods: dict[str, ast.FunctionDef] = {}
    functions: dict[str, ast.FunctionDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            (methods if id(node) in members else functions)[node.name] = node
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and called_name(node) in ("Route", "WebSocketRoute")):
            continue
        endpoint = node.args[1] if len(node.args) > 1 else None
        if isinstance(endpoint, ast.Name) and endpoint.id in functions:
            yield functions[endpoint.id]
        elif isinstance(endpoint, ast.Attribute) and endpoint.attr in methods:
            yield methods[endpoint.attr]


def offences(root: Path) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
    """What breaks the rule, as (file, async function, what), and the OTHER_THREADS entries seen."""
    found, threads = set(), set()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative == THE_WAY:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), relative)
            database = database_functions(tree)
            for function in async_functions(tree):
                for trouble in direct_trouble(function):
                    if trouble.startswith("starts") and (relative, function.name) in OTHER_THREADS:
                        threads.add((relative, function.name))
                        continue
                    found.add((relative, function.name, trouble))
                for node in own_body(function):
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                        if node.func.id in database:
                            found.add((relative, function.name, f"calls {node.func.id} on the loop"))
            for endpoint in sync_endpoints(tree):
                calls = {called_name(n) for n in own_body(endpoint) if isinstance(n, ast.Call)}
                if direct_trouble(endpoint) or takes_session(endpoint) or calls & database:
                    found.add((relative, endpoint.name, "is a sync endpoint touching the database"))
    return found, threads


def test_async_functions_leave_database_work_to_crm_run(project_root: Path) -> None:
    found, _ = offences(project_root)
    assert not found, "\n".join(
        f"{file}: async {function} {what} (hand it to `await crm.run(fn)`)"
        for file, function, what in sorted(found)
    )


def test_every_other_thread_listed_is_still_there(project_root: Path) -> None:
    _, threads = offences(project_root)
    assert threads == set(OTHER_THREADS), "take entries that are no longer true off OTHER_THREADS"


def write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def test_each_way_onto_the_loop_is_caught(tmp_path: Path) -> None:
    write(
        tmp_path,
        "bot/console/page.py",
        "from bot.crm.db import session_scope\n"
        "from bot.crm.passwords import hash_password\n"
        "def _rows(session):\n    return session.execute('x')\n"
        "def _count():\n    return len(_rows(None))\n"
        "async def scoped(url):\n    with session_scope(url) as s:\n        return s\n"
        "async def hashed(text):\n    return hash_password(text)\n"
        "async def shared(self):\n    return self.sessions.read('c', session=self.db)\n"
        "async def factory(self):\n    with self.factory.begin() as s:\n        return s\n"
        "async def direct():\n    return _count()\n"
        "async def threaded():\n    import asyncio\n    return await asyncio.to_thread(_count)\n"
        "async def fine(crm):\n    await crm.run(_rows)\n"
        "    return await crm.run(lambda session: _rows(session))\n"
        "def page(request):\n    return _count()\n"
        "def plain(request):\n    return 'no database'\n"
        "routes = [Route('/', page), Route('/plain', plain)]\n",
    )
    found, _ = offences(tmp_path)
    assert {(f, w) for _, f, w in found} == {
        ("scoped", "calls session_scope"),
        ("hashed", "calls hash_password"),
        ("shared", "passes a session"),
        ("factory", "opens self.factory.begin()"),
        ("direct", "calls _count on the loop"),
        ("threaded", "starts a thread (to_thread)"),
        ("page", "is a sync endpoint touching the database"),
    }
