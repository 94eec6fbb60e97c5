"""What `make eval` plots and tabulates: its series (each a way of pruning, ours or a
peer's), their labels, and one measured point (`Result`). The evaluation
(study.evaluate) makes Results; the report (study.report) draws them."""

from __future__ import annotations

from dataclasses import dataclass

from .iterative import REWINDS

COMMAND = "make eval (python -m prune8_eval.evaluate)"

UNSTRUCTURED = ("magnitude", "gradient", "mincut")
SERIES = UNSTRUCTURED + ("rows", "random", "torch-l1", "torch-ln", "sparsegpt")
STRUCTURED = ("rows", "torch-ln")
CONTROLS = ("magnitude-rq",)          # one-shot only, in the table and the CSV
IMP_SERIES = tuple(f"imp-{r}" for r in REWINDS) + ("retrain",)
LABELS = {
    "magnitude": "magnitude |w|",
    "gradient": "gradient proxy |w·a|>>4",
    "mincut": "min-cut",
    "rows": "rows (hidden neurons, L1)",
    "random": "random (seeded)",
    "torch-l1": "PyTorch l1_unstructured",
    "torch-ln": "PyTorch ln_structured (rows)",
    "sparsegpt": "SparseGPT (OBS updates), requantized",
    "magnitude-rq": "magnitude |w|, requantized (control)",
    "imp-init": "IMP, rewind to init",
    "imp-early": "IMP, rewind to an early epoch",
    "imp-none": "IMP, no rewind",
    "retrain": "magnitude one-shot + one IMP round's training (control)",
}
SHORT = {  # for table headers: markdown tables cannot hold "|w|"
    "magnitude": "magnitude", "gradient": "gradient", "mincut": "min-cut", "rows": "rows",
    "random": "random", "torch-l1": "torch l1", "torch-ln": "torch ln rows",
    "sparsegpt": "SparseGPT", "magnitude-rq": "magnitude requant.",
    "imp-init": "IMP init", "imp-early": "IMP early", "imp-none": "IMP none",
    "retrain": "one-shot + retrain",
}


@dataclass(frozen=True)
class Result:
    method: str
    finetuned: bool        # trained (masked) after pruning
    sparsity_bp: int       # asked for (series "imp": 1 - (1 - 95%)^(r/R) at round r)
    pruned: int            # weights zeroed by the masks, both layers
    total: int
    correct: int
    images: int
    epochs: int = 0        # masked-training epochs after the first pruning
    series: str = "grid"   # "grid": every 5%; "imp": at the IMP rounds' sparsities

    @property
    def accuracy(self) -> float:
        return self.correct / self.images

    @property
    def actual_bp(self) -> int:
        return self.pruned * 10000 // self.total
