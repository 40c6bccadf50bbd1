"""Write the old-stack checkpoint fixtures of tests/test_compat.py.

Run once under the stack trashpole used before the current-stack change (Python 3.10, torch 2.3.1,
numpy 1.26, detectron2 from sal-detectron2 0.7.2), from the repository root:

    python tests/data/make_old_stack_files.py tests/data

It writes, as that stack pickles them:
- ``old_stack_resume.pth``: a resume checkpoint of a small model (a Linear layer and a BatchNorm)
  with Adam and detectron2 LR-scheduler state and numpy scalars and arrays in its extra state;
- ``old_stack_zoo.pkl``: a detectron2 model-zoo style pickle (numpy arrays under "model").
"""

import pickle
import sys

import numpy as np
import torch
from detectron2.solver import LRMultiplier
from fvcore.common.param_scheduler import MultiStepParamScheduler


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


def main(folder: str) -> None:
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = LRMultiplier(
        optimizer, MultiStepParamScheduler([1.0, 0.1], milestones=[5], num_updates=10), 10
    )
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.ones(4, 3)).sum().backward()
        optimizer.step()
        sched.step()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": sched.state_dict(),
            "iteration": 3,
            "best_metric": np.float64(0.25),
            "best_iteration": np.int64(2),
            "history": np.array([0.125, 0.25]),
        },
        f"{folder}/old_stack_resume.pth",
    )
    zoo = {
        "model": {
            "0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
            "0.bias": np.array([0.5, -0.5], dtype=np.float32),
        },
        "__author__": "Detectron2 Model Zoo",
    }
    with open(f"{folder}/old_stack_zoo.pkl", "wb") as f:
        pickle.dump(zoo, f, protocol=2)


if __name__ == "__main__":
    main(sys.argv[1])
