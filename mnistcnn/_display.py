"""How results show themselves in a notebook: one document (headings, lines, tables)
rendered as HTML or Markdown, records flattened for pandas, and a set of figures that
displays as images. Pure Python: numpy, matplotlib and pandas load only when asked for.
"""
from __future__ import annotations

import base64
import html
import io


class Doc:
    """A short document, built once and rendered as HTML (``_repr_html_``) or Markdown."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def heading(self, text: str) -> Doc:
        self.blocks.append(("heading", text))
        return self

    def line(self, text: str) -> Doc:
        self.blocks.append(("line", text))
        return self

    def items(self, texts) -> Doc:
        texts = list(texts)
        if texts:
            self.blocks.append(("items", texts))
        return self

    def table(self, head, rows, right=()) -> Doc:
        """``right``: the indices of right-aligned (numeric) columns."""
        self.blocks.append(("table", list(head), [[str(c) for c in r] for r in rows], set(right)))
        return self

    def html(self) -> str:
        out = []
        for kind, *rest in self.blocks:
            if kind == "heading":
                out.append(f"<h4>{html.escape(rest[0])}</h4>")
            elif kind == "line":
                out.append(f"<p>{html.escape(rest[0])}</p>")
            elif kind == "items":
                out.append("<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in rest[0]) + "</ul>")
            else:
                head, rows, right = rest
                align = [f' style="text-align:{"right" if i in right else "left"}"' for i in range(len(head))]
                out.append("<table><thead><tr>" + "".join(f"<th{align[i]}>{html.escape(h)}</th>"
                                                          for i, h in enumerate(head)) + "</tr></thead><tbody>"
                           + "".join("<tr>" + "".join(f"<td{align[i]}>{html.escape(c)}</td>" for i, c in enumerate(r))
                                     + "</tr>" for r in rows) + "</tbody></table>")
        return "\n".join(out)

    def markdown(self) -> str:
        out = []
        for kind, *rest in self.blocks:
            if kind == "heading":
                out.append(f"#### {rest[0]}")
            elif kind == "line":
                out.append(rest[0])
            elif kind == "items":
                out.append("\n".join(f"- {t}" for t in rest[0]))
            else:
                head, rows, right = rest
                cell = lambda c: c.replace("|", "\\|")  # noqa: E731
                out.append("\n".join(["| " + " | ".join(map(cell, head)) + " |",
                                      "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|",
                                      *("| " + " | ".join(map(cell, r)) + " |" for r in rows)]))
        return "\n\n".join(out) + "\n"


def flat(record: dict) -> dict:
    """{'test_acc': {'mean': m, 'sd': s}} -> {'test_acc_mean': m, 'test_acc_sd': s}: one
    level of nesting flattened, for a table's columns."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update({f"{k}_{sub}": x for sub, x in v.items()})
        else:
            out[k] = v
    return out


def to_pandas(records: list):
    """A pandas DataFrame of the records; pandas is the optional ``notebook`` extra."""
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas() needs pandas, which mnistcnn does not install by default: "
                          "pip install 'mnistcnn[notebook]' (or pip install pandas).") from None
    return pandas.DataFrame.from_records(records)


class Figures(dict):
    """Matplotlib figures by name (``figs['forest']`` is a matplotlib Figure). A notebook
    shows them all, one under the other, whichever matplotlib backend is active;
    ``save(directory)`` writes each as ``<name>.png``."""

    def _png(self, fig) -> bytes:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        return buf.getvalue()

    def _repr_html_(self) -> str:
        return "\n".join(f"<p><b>{html.escape(name)}</b></p><img src=\"data:image/png;base64,"
                         f"{base64.b64encode(self._png(fig)).decode()}\"/>" for name, fig in self.items())

    def __repr__(self) -> str:
        return f"Figures({', '.join(self)})"

    def save(self, directory) -> list:
        """Write every figure as ``directory/<name>.png``; returns the paths."""
        from pathlib import Path

        paths = []
        for name, fig in self.items():
            path = Path(directory) / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110, bbox_inches="tight")
            paths.append(path)
        return paths


def figures(pairs) -> Figures:
    """Figures from (name, figure) pairs, each closed in pyplot (kept alive by the dict,
    and not shown a second time by a notebook's inline backend)."""
    import matplotlib.pyplot as plt

    out = Figures()
    for name, fig in pairs:
        plt.close(fig)
        out[name] = fig
    return out
