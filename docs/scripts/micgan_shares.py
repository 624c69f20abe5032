"""Issue 24 (usage: python micgan_shares.py RUN): a trained run's π sorted against its data's true class
shares (both sorted, padded with zeros) as an L1 distance, and which true classes hold a mode of their
own (the majority of at least one mode with π > 1%), from the run's modes.json. One JSON line."""
import json
import sys
from pathlib import Path

import numpy as np

run = Path(sys.argv[1])
modes = json.loads((run / "modes.json").read_text())
table = np.array(modes["mode_x_label"])  # (K, classes)
pi = np.array(modes["pi"])
shares = table.sum(0) / table.sum()
k = max(len(pi), len(shares))
pi_sorted = np.sort(np.pad(pi, (0, k - len(pi))))[::-1]
shares_sorted = np.sort(np.pad(shares, (0, k - len(shares))))[::-1]
kept = pi > 0.01
owners = sorted({int(c) for c in table[kept].argmax(1)})
print(json.dumps({"run": run.name, "step": modes["step"], "k_found": int(kept.sum()),
                  "pi_sorted": [round(float(v), 4) for v in pi_sorted if v > 0],
                  "shares_sorted": [round(float(v), 4) for v in shares_sorted if v > 0],
                  "l1": round(float(np.abs(pi_sorted - shares_sorted).sum()), 4),
                  "classes_with_own_mode": owners, "classes": len(shares),
                  "missing": [c for c in range(len(shares)) if c not in owners]}))
