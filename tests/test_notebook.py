"""The notebook for the tutorial's readers (notebooks/from-the-tutorial.ipynb), executed top to bottom by a real Jupyter
kernel on the tiny data set, its parameters replaced as papermill does; and README.zh-CN.md's commands, the README's."""

import re

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, tiny_data

NOTEBOOK = REPO / "notebooks" / "from-the-tutorial.ipynb"


def test_the_notebook_is_kept_without_outputs() -> None:
    code = [cell for cell in nbformat.read(NOTEBOOK, as_version=4).cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_the_notebook_runs_and_shows_its_figures(tiny_mnist, tmp_path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    parameters = f"overrides = {tiny_data(tiny_mnist)!r}\nlog_dir = {str(tmp_path)!r}\nsteps = 40\ntutorial_batch = 64"
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(parameters, metadata={"tags": ["injected-parameters"]}))
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    printed = "".join(output.get("text", "") for output in outputs if output.get("name") == "stdout")
    for line in ("same probabilities: True", "10.0 times more", "equal weights: True", "one epoch of them: True"):
        assert line in printed
    assert re.search(r"epochs 1 -> 2, steps (\d+) -> (\d+), in the same folder: True", printed)
    assert "refused before anything was built: optimizer.lr=-1: Input should be greater than 0" in printed
    assert "detach().numpy(): [1. 1. 1.]  np.array(): [0. 0. 0.]" in printed
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(figures) == 2  # the tutorial's plot of acc/test_batch_tutorial, and the run's curves.png


def commands(markdown: str, block: int) -> list[str]:
    """The commands of the ``block``-th bash block, comments left out."""
    text = re.findall(r"```bash\n(.*?)```", markdown, flags=re.S)[block]
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_chinese_quick_start_has_the_readmes_commands() -> None:
    english, chinese = (REPO / "README.md").read_text(), (REPO / "README.zh-CN.md").read_text()
    for block in (0, 1):  # the two first commands, then the everyday commands
        assert commands(chinese, block) == commands(english, block) != []
    assert "README.zh-CN.md" in english.split("\n## ")[0] and "notebooks/from-the-tutorial.ipynb" in chinese
