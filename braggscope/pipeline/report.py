"""HTML pages of the pipeline: one self-contained page per scan (pictures inlined as base64, the
interactive PyVista view inlined in an iframe) and one summary page for the batch, a table of all
crystals sortable by any column (a few lines of inline JavaScript; no file is fetched, so both
pages open offline, and copied elsewhere, as they are)."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

__all__ = ["scan_page", "summary_page", "thumbnail", "img_tag", "defect_rows", "ranked_classes"]

_STYLE = """body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em}
td,th{padding:2px 8px;vertical-align:top;text-align:left}th{cursor:pointer;background:#eee}
tr:nth-child(even){background:#f7f7f7}.flag{color:#a40}.failed{color:#c00}code{font-size:80%}
img{max-width:100%}"""


def img_tag(path, alt, style=""):
    """The PNG at `path` inlined as an <img> (base64), or a line saying it was not made."""
    path = Path(path)
    if not path.is_file():
        return f"<p><i>{html.escape(alt)}: not made (see the scan's notes)</i></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="{style}">'


def _interactive(path):
    """The PyVista export (vtk.js, offline) inlined as an iframe's srcdoc."""
    path = Path(path)
    if not path.is_file():
        return "<p><i>No interactive view (pyvista and trame are not installed).</i></p>"
    return (f'<iframe title="interactive 3-D view" style="width:100%;height:600px;border:1px solid #ccc" '
            f'srcdoc="{html.escape(path.read_text(encoding="utf-8"), quote=True)}"></iframe>')


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items()) or "none"
    return html.escape(str(v))


def _table(rows):
    return "<table>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rows) + "</table>"


def ranked_classes(verdict) -> str:
    """The pattern classifier's classes, most probable first, with their probabilities."""
    return ", ".join(f"{k} {p:.2f}" for k, p in sorted(verdict["probabilities"].items(), key=lambda kv: -kv[1]))


def _verdict(v):
    from ..identify.patterns import invisible_text

    if not v:
        return "not run"
    ranked = ranked_classes(v)
    return (f"{v['label']} ({ranked}" + ("" if v["known"] else f"; outside the training distribution, score "
                                                               f"{v['ood_score']:.0f}")
            + f"; {invisible_text(v.get('hkl'), v.get('invisible'))})")


def defect_rows(defects) -> str:
    """Table rows of a defect list (:class:`~braggscope.identify.DefectReport`'s): type, then where
    it is, its direction or plane, size, winding and confidence."""
    keys = ("centre_nm", "line_direction", "plane_normal", "length_nm", "area_nm2", "winding", "confidence")
    cell = lambda v: np.array2string(np.asarray(v), precision=2) if isinstance(v, list) else _fmt(v)
    return "".join(f"<tr><td>{html.escape(d['type'])}</td><td>" + ", ".join(
        f"{k} {cell(d[k])}" for k in keys if d.get(k) is not None) + "</td></tr>" for d in defects)


def scan_page(folder, config, row, timings, report) -> str:
    """The scan's page: data, verdict, reconstruction, strain figure, defects (list, picture,
    interactive view), LLKs, parameters and timings."""
    folder = Path(folder)
    scalars = [("beamline", row.get("beamline")), ("crystal size", f"{row['size_nm']:.0f} nm"),
               ("voxels in the support", row["voxels"]), ("mean strain", row["strain_mean"]),
               ("RMS strain", row["strain_rms"]), ("RMS strain (bulk)", row["bulk_strain_rms"]),
               ("d-spacing from the peak", f"{row['d_spacing_nm']:.5f} nm"
                + (f" ([sample]'s reflection: {row['d_spacing_expected_nm']:.5f} nm)"
                   if row.get("d_spacing_expected_nm") else "")), ("LLK (Poisson)", row["llk"]),
               ("free LLK", row["free_llk"]), ("mode fraction of the kept runs", row["mode_fraction"]),
               ("PRTF resolution", f"{row['prtf_resolution_voxels']:.2f} voxels"), ("recipe", row["recipe"]),
               ("partial-coherence PSF, FWHM", "none" if row.get("psf_fwhm_pixels") is None
                else " × ".join(f"{w:.2f}" for w in row["psf_fwhm_pixels"]) + " pixels"),
               ("network seed", row["seed_net"]), ("device", row["device"]), ("masked voxels", row["prepare"])]
    flags = ", ".join(row["flags"]) or "none"
    times = [(k, f"{v:.2f} s") for k, v in timings.items()]
    params = html.escape(json.dumps(config.as_dict(), indent=1))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>scan {row['scan']}</title>
<style>{_STYLE}</style></head><body>
<h1>Scan {html.escape(str(row['scan']))}</h1><p>Quality flags: <span class="flag">{html.escape(flags)}</span></p>
{_table(scalars)}
<h2>Diffraction pattern</h2>{img_tag(folder / 'diffraction.png', 'prepared data')}
<h2>Pattern classifier</h2><p>{html.escape(_verdict(row.get('pattern')))}</p>
<h2>Reconstruction</h2>{img_tag(folder / 'object.png', 'reconstruction')}
<h2>Strain</h2>{img_tag(folder / 'strain.png', 'strain figure')}
<h2>Defects ({html.escape(report.method)})</h2>
<table>{defect_rows(report.defects) or '<tr><td>none found</td></tr>'}</table>
{img_tag(folder / 'defects.png', 'PyVista picture')}
<h3>Interactive view</h3>{_interactive(folder / 'defects.html')}
<h2>Timings</h2>{_table(times)}
<h2>Parameters</h2><pre><code>{params}</code></pre>
</body></html>"""


def thumbnail(field, path):
    """A small PNG of the strain's central slice (the summary table's picture), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from ..io.cxi import atomic_path

    mid = int(np.mean(np.nonzero(field.support)[0]))
    rows, cols = np.nonzero(field.support[mid])
    box = (mid, slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)) if rows.size else mid
    eps = np.ma.masked_where(~field.support[box], field.strain[box] * 100)
    lim = float(np.percentile(np.abs(eps.compressed()), 99)) if eps.count() else 1e-3
    fig = Figure(figsize=(1.4, 1.4), dpi=72)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(eps, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


_SORT = """<script>
document.querySelectorAll('th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], up = th.dataset.order !== 'up';
  const key = r => { const c = r.cells[col], v = c.dataset.value ?? c.textContent; return isNaN(v) ? v : +v; };
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
    .forEach(r => body.appendChild(r));
  th.dataset.order = up ? 'up' : 'down';
}));
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.dataset.images = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.ready = 'yes';
});
</script>"""


def _cell(value, shown=None):
    v = "" if value is None else value
    return f'<td data-value="{html.escape(str(v))}">{shown if shown is not None else _fmt(v)}</td>'


def _summary_row(row, output):
    scan, link = row["scan"], Path(row["folder"]).name
    if row.get("status") == "failed":
        return (f'<tr>{_cell(scan, html.escape(str(scan)))}{_cell("failed", "<b class=failed>failed</b>")}'
                + "".join(_cell(None) for _ in range(8)) + f'{_cell(row["error"])}</tr>')
    defects = sum(row["defect_counts"].values())
    pattern = row.get("pattern") or {}
    return ("<tr>" + _cell(scan, f'<a href="{link}/report.html">{html.escape(str(scan))}</a>')
            + _cell(row["status"]) + _cell(None, img_tag(Path(output) / link / "thumb.png", f"scan {scan}"))
            + _cell(round(row["size_nm"], 1)) + _cell(row["strain_mean"]) + _cell(row["strain_rms"])
            + _cell(defects, _fmt(row["defect_counts"]) if defects else "none")
            + _cell(pattern.get("label"), html.escape(str(pattern.get("label", "not run"))))
            + _cell(row["llk"]) + _cell(row["prtf_resolution_voxels"])
            + _cell(len(row["flags"]), f'<span class="flag">{html.escape(", ".join(row["flags"]))}</span>') + "</tr>")


def _tensor_row(row):
    """One crystal of [tensor]: its scans, reflections and strain tensor figures, or why not."""
    name = html.escape(row["crystal"])
    if row["status"] != "done":
        why = row.get("error") or f"waiting for scans {', '.join(map(str, row.get('missing', [])))}"
        return f"<tr><td>{name}</td><td>{html.escape(row['status'])}</td><td colspan=6>{html.escape(why)}</td></tr>"
    reflections = "; ".join(" ".join(map(str, k)) for k in row["hkls"])
    misfit = "–" if row["misfit_median"] is None else _fmt(row["misfit_median"])
    burgers = ", ".join(d["burgers"] for d in row["dislocations"]) or "none found"
    undecided = row.get("twins_undecided")
    status = "done" + (f" (twin undecided: scans {', '.join(map(str, undecided))})" if undecided else "")
    return (f'<tr><td><a href="{name}.png">{name}</a> (<a href="{name}.h5">HDF5</a>)</td><td>{status}</td>'
            f"<td>{html.escape(reflections)}</td><td>{_fmt(row['strain_rms'])}</td>"
            f"<td>{_fmt(row['dilatation_mean'])}</td><td>{misfit}</td><td>{_fmt(row['orientation_misfit_deg'])}</td>"
            f"<td>{html.escape(burgers)}</td></tr>")


def _tensor_table(crystals):
    if not crystals:
        return ""
    head = ("crystal", "status", "reflections", "RMS strain (6 components)", "mean dilatation", "median misfit",
            "orientation fit [deg]", "Burgers vectors")
    return (f"<h2>Strain tensors of crystals measured at several reflections</h2><table><thead><tr>"
            f"{''.join(f'<th>{h}</th>' for h in head)}</tr></thead><tbody>"
            f"{''.join(_tensor_row(r) for r in crystals)}</tbody></table>")


def summary_page(rows, output, crystals=()) -> str:
    """The batch's page: one row per scan, sortable by clicking a column's header; then the
    crystals of [tensor] (`crystals`: :func:`~braggscope.pipeline.crystals.crystal_tensor`'s rows)."""
    head = ("scan", "status", "strain (central slice)", "size [nm]", "mean strain", "RMS strain", "defects",
            "pattern classifier", "LLK", "PRTF resolution [voxels]", "flags")
    done = sum(r.get("status") in ("done", "skipped") for r in rows)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>braggscope batch</title>
<style>{_STYLE}</style></head><body>
<h1>Batch summary</h1><p>{done} of {len(rows)} scans reconstructed, {len(rows) - done} failed. Click a column's header
to sort; a scan's number opens its page.</p>
<table id="crystals"><thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead>
<tbody>{''.join(_summary_row(r, output) for r in rows)}</tbody></table>
{_tensor_table(crystals)}
{_SORT}</body></html>"""
