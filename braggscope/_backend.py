"""Device and dtype resolution for the torch compute parts (chosen per call, never globally), the
training loop and checkpoints the networks share, and the cache of their simulated training sets."""
from __future__ import annotations

from ._validate import check_choice
from .errors import DeviceError

__all__ = ["resolve_device", "one_cycle_training", "load_checkpoint", "source_fingerprint", "simulated_set"]


def resolve_device(device="auto"):
    """The torch device for `device`: 'auto' (CUDA if torch sees one, else CPU), 'cpu', 'cuda',
    'cuda:N' or 'mps' (only when named)."""
    import torch

    if isinstance(device, torch.device):
        return device
    name = str(device)
    base = name.split(":")[0]
    check_choice(base, "device", {"auto", "cpu", "cuda", "mps"})
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def one_cycle_training(model, batch_loss, *, steps, lr, pct_start=0.05, log_every=50, label=""):
    """Train `model` for `steps` AdamW steps (weight decay 10⁻⁴) under a one-cycle learning rate
    peaking at `lr`: `batch_loss(step)` returns the loss of a fresh batch. Prints the mean loss
    every `log_every` steps; returns the model in eval mode."""
    import time

    import numpy as np
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=pct_start)
    model.train()
    t0, running = time.time(), []
    for step in range(steps):
        loss = batch_loss(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % log_every == 0:
            print(f"{label}step {step + 1}/{steps} loss {np.mean(running):.4f} {time.time() - t0:.0f} s", flush=True)
            running = []
    return model.eval()


def load_checkpoint(path, what, how_to_make):
    """The dict saved by torch.save at `path` (tensors only, on the CPU); ConfigError naming
    `what` is missing and `how_to_make` it when there is no such file."""
    from pathlib import Path

    import torch

    from .errors import ConfigError

    if not Path(path).is_file():
        raise ConfigError(f"no {what} at {path}; {how_to_make}")
    return torch.load(path, map_location="cpu", weights_only=True)


def _package_imports(name, origin) -> set:
    """Names of the modules of the same top-level package that the module `name` (source file
    `origin`) imports anywhere in its code, found by reading it: relative imports resolved, and
    for ``from P import x`` the submodule P.x where P is a package that has one, else P."""
    import ast
    import importlib.util
    from pathlib import Path

    top, package = name.split(".")[0], name.rpartition(".")[0]

    def ours(module):
        return module == top or module.startswith(top + ".")

    def imported(base, attribute):
        sub = f"{base}.{attribute}"
        is_package = ours(base) and importlib.util.find_spec(base).submodule_search_locations
        return sub if is_package and importlib.util.find_spec(sub) else base

    found = set()
    for node in ast.walk(ast.parse(Path(origin).read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            found.update(imported(base, a.name) for a in node.names)
    return {m for m in found if ours(m)}


def source_fingerprint(sources) -> str:
    """SHA-256 (hex) of the source of `sources` (importable module names, or functions), in a
    fixed order: it changes whenever the code that made something does. A function counts by its
    own source text; a package with all its .py files; a module with the modules of its own
    top-level package that it imports, directly or through them (a package so imported counts
    whole; the packages' __init__ files do not count), so that a change to a module it never
    imports leaves the fingerprint alone."""
    import hashlib
    import importlib.util
    from pathlib import Path

    files, todo, seen = set(), [s for s in sources if isinstance(s, str)], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec.submodule_search_locations:
            files.update(f for root in spec.submodule_search_locations for f in Path(root).rglob("*.py"))
        else:
            files.add(Path(spec.origin))
            todo.extend(_package_imports(name, spec.origin))
    digest = hashlib.sha256()
    for f in sorted(files):
        digest.update(f.name.encode())
        digest.update(f.read_bytes())
    for function in sorted((s for s in sources if callable(s)), key=lambda f: f.__qualname__):
        digest.update(_function_source(function).encode())
    return digest.hexdigest()


def _function_source(function) -> str:
    """The source text of `function` as its file now reads (found by name among the file's
    top-level definitions, so that an edit above it does not shift it as it would shift
    :func:`inspect.getsource` in a process that imported the file before the edit)."""
    import ast
    import inspect
    from pathlib import Path

    text = Path(inspect.getsourcefile(function)).read_text()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function.__qualname__:
            return ast.get_source_segment(text, node)
    return inspect.getsource(function)


def simulated_set(simulate_one, seeds, keys, path=None, *, sources, workers=2, chunksize=8) -> dict:
    """The rows ``simulate_one(seed)`` (tuples, one item per key) of every seed, stacked per key,
    simulated in `workers` processes. With `path` they are cached in that npz file together with
    the seeds and :func:`source_fingerprint` of `simulate_one` and `sources` (the modules and
    functions it calls): a cache of other seeds or made by other code is simulated again, never
    reused."""
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    import numpy as np

    seeds = np.asarray(list(seeds), dtype=np.int64)
    stamp = source_fingerprint([simulate_one, *sources])
    if path is not None and Path(path).is_file():
        with np.load(path) as f:
            if "seeds" in f and np.array_equal(f["seeds"], seeds) and str(f["fingerprint"]) == stamp:
                return {k: f[k] for k in keys}
        print(f"{path}: made from other seeds or other code; simulating again", flush=True)
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(simulate_one, seeds.tolist(), chunksize=chunksize))
    data = {k: np.stack([r[i] for r in rows]) for i, k in enumerate(keys)}
    if path is not None:
        from .io.cxi import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, seeds=seeds, fingerprint=np.array(stamp), **data)
    return data
