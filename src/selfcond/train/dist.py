"""Training on several processes: `torchrun --nproc_per_node N -m selfcond train ...`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `init` joins the process group once (NCCL on CUDA,
gloo on CPU). Without torchrun the world is one process and every function here is a no-op, so
a one-process run is the very same code and bits as before.

How the ranks divide the work (the same as stylegan2-ada-pytorch's training loop):
- every rank holds the same G, D, G's average, optimisers and partition; each draws its own share
  of the batch (train.batch / world size) from its own random stream;
- after each backward the gradients are averaged over the ranks (one all-reduce of a flat buffer;
  no DistributedDataParallel wrapper, which does not take R1's double backward and D's two forward
  passes per step cleanly), so every rank takes the same optimiser step and the weights stay equal;
- BatchNorm normalises each rank's share (as DDP does); its running statistics are rank 0's,
  broadcast after every step;
- the partition's refresh (features, k-means or Gibbs) runs on every rank from the shared stream,
  on the same weights and data, so π and the mode table are the same everywhere without a message;
- rank 0 alone writes the run directory; a checkpoint holds every rank's stream;
- snapshot metrics are computed on every rank, each putting its block of the samples through G
  (`gathered`), so that G's share of the evaluation is divided between the ranks.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as td

from selfcond.errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes: rank 0, or the only one."""
        return self.rank == 0


def world() -> World:
    """This process's place, from torchrun's environment (one process without it)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(device: torch.device) -> World:
    """Join the process group once when torchrun started several processes; the world either way."""
    w = world()
    if w.size > 1 and not td.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # Rank 0 may be busy with a snapshot's metrics while the others wait at the next all-reduce.
        minutes = float(os.environ.get("SELFCOND_DIST_TIMEOUT_MIN", "60"))
        timeout = datetime.timedelta(minutes=minutes)
        try:
            td.init_process_group(backend, store=_store(w, timeout), rank=w.rank, world_size=w.size,
                                  timeout=timeout)
        except (RuntimeError, ValueError, KeyError) as e:
            raise UserError(f"rank {w.rank} of {w.size} could not join the others ({str(e).splitlines()[0]}): "
                            "start every rank with the same torchrun --rdzv-endpoint") from None
    return w


def place(device: torch.device, batch: int) -> tuple[World, torch.device, int]:
    """Join the others (when there are) -> (this rank's place, its device, its share of the batch)."""
    w = init(device)
    if w.size > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", w.local_rank)  # one GPU per rank
        torch.cuda.set_device(device)
    if batch % w.size:
        raise UserError(f"train.batch ({batch}) must be a multiple of the {w.size} ranks: each takes an equal share")
    return w, device, batch // w.size


def _store(w: World, timeout: datetime.timedelta) -> td.Store:
    """The rendezvous store, its keys prefixed by torchrun's attempt: after --max-restarts the
    agent's store still holds the last attempt's addresses, which gloo would otherwise dial."""
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # torchrun's agent hosts it
    store = td.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), w.size,
                        is_master=not agent and w.rank == 0, timeout=timeout, multi_tenant=not agent)
    return td.PrefixStore(f"selfcond/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def active() -> bool:
    return td.is_available() and td.is_initialized() and td.get_world_size() > 1


def average_grads(module: torch.nn.Module) -> None:
    """Each parameter's gradient -> its mean over the ranks, in one all-reduce."""
    if not active():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    td.all_reduce(flat)
    flat /= td.get_world_size()
    torch._foreach_copy_(grads, list(torch._utils._unflatten_dense_tensors(flat, grads)))


class SyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch on any device and backend (torch's SyncBatchNorm takes CUDA
    only): the per-channel sums and sums of squares are all-reduced with an all-reduce that autograd
    differentiates (twice, for R1), so the output and its gradients are those of one BatchNorm over
    the ranks' batches put together. Alone, or in eval mode, it is the BatchNorm it replaced."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c, dims = x.shape[1], [0, *range(2, x.dim())]
        xf = x.float()
        local = torch.cat([xf.sum(dims), xf.square().sum(dims), xf.new_tensor([x.numel() / c])])
        total = all_reduce(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean.square()).clamp(min=0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                unbiased = var.detach() * (n / (n - 1).clamp(min=1))
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = (1, c) + (1,) * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: torch.nn.Module, on: bool) -> torch.nn.Module:
    """With `on` (train.sync_bn), every BatchNorm of `module` becomes a SyncBatchNorm holding the same
    parameters and buffers (the state dict is unchanged); otherwise `module` as it is."""
    if not on:
        return module
    for name, child in module.named_children():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(child, SyncBatchNorm):
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                 child.track_running_stats)
            sync.load_state_dict(child.state_dict())
            if child.affine:
                sync.weight, sync.bias = child.weight, child.bias
            sync.train(child.training)
            setattr(module, name, sync)
        else:
            sync_batchnorm(child, True)
    return module


def broadcast_buffers(*modules: torch.nn.Module | None) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every rank: one broadcast per dtype of a
    flat buffer, not one per tensor, whose latency added up every step (docs/RESULTS.md, torchrun)."""
    if not active():
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for m in modules:
        if m is not None:
            for b in m.buffers():
                by_dtype.setdefault(b.dtype, []).append(b)
    for bufs in by_dtype.values():
        flat = torch._utils._flatten_dense_tensors(bufs)
        td.broadcast(flat, 0)
        torch._foreach_copy_(bufs, list(torch._utils._unflatten_dense_tensors(flat, bufs)))


def gathered(sample):
    """`sample(n, generator, y=None, rows=None, apply=None)` shared out between the ranks: every
    rank draws the same modes and noise from the same generator, puts its block of the rows through
    G (and through `apply`, the metric's features or labels, when given), and receives all n rows
    (x or apply(x) (n, ...), modes (n,)). Every rank must make the same calls (snapshot metrics do);
    in one process, `sample` itself."""
    if not active():
        return sample

    def draw(n: int, generator: torch.Generator, y: torch.Tensor | None = None, apply=None):
        w, r = td.get_world_size(), td.get_rank()
        if n < w:
            return sample(n, generator, y, apply=apply)
        x, y = sample(n, generator, y, rows=slice(n * r // w, n * (r + 1) // w), apply=apply)
        per = -(-n // w)  # blocks differ by at most one row: padded to the largest for all_gather
        mine = x.new_zeros((per, *x.shape[1:]))
        mine[:x.shape[0]] = x
        parts = [torch.empty_like(mine) for _ in range(w)]
        td.all_gather(parts, mine)
        return torch.cat([part[:n * (i + 1) // w - n * i // w] for i, part in enumerate(parts)]), y

    return draw


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on any (a time budget that ran out somewhere)."""
    if not active():
        return flag
    t = torch.tensor([float(flag)], device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item())


def gather_states(state: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's generator state (a uint8 tensor), in rank order; [state] alone in one process."""
    if not active():
        return [state]
    out = [None] * td.get_world_size()
    td.all_gather_object(out, state.cpu())
    return out


def broadcast_object(obj):
    """Rank 0's `obj` on every rank (the run directory's path)."""
    if not active():
        return obj
    box = [obj]
    td.broadcast_object_list(box, 0)
    return box[0]


def check_agree(step: int, **parts) -> None:
    """Raise on every rank unless all ranks hold the same bits in each of `parts` (modules or tensors):
    one float64 checksum per part, compared with rank 0's. Run at snapshots, so a nondeterministic
    kernel or a missed all-reduce cannot drift unseen."""
    if not active():
        return
    sums = []
    for part in parts.values():
        tensors = list(part.parameters()) if isinstance(part, torch.nn.Module) else [part]
        sums.append(sum(float(t.detach().double().sum()) + float(t.detach().double().abs().sum()) * 1e-3
                        for t in tensors if t is not None))
    mine = torch.tensor(sums, dtype=torch.float64)
    every = [torch.empty_like(mine) for _ in range(td.get_world_size())]
    td.all_gather(every, mine)
    differ = (torch.stack(every) != every[0]).any(0)  # (parts,): some rank is not rank 0
    if differ.any():
        names = [n for n, d in zip(parts, differ.tolist()) if d]
        raise RuntimeError(f"the ranks disagree on {', '.join(names)} at step {step}: every rank must hold "
                           "the same weights and modes (a nondeterministic kernel, or ranks of unequal code)")


def barrier() -> None:
    if active():
        td.barrier()


PEER_GONE = ("Connection reset by peer", "Connection closed by peer", "Socket closed", "NCCL communicator was aborted",
             "Timed out", "DistBackendError")


def lost_peer(e: BaseException) -> bool:
    """Whether `e` is a collective that failed because another rank is gone (gloo raises a plain
    RuntimeError naming the broken connection)."""
    return active() and (isinstance(e, td.DistError) or any(m in str(e) for m in PEER_GONE))


def lost_peer_error(e: BaseException, step: int, run_dir) -> UserError:
    """The one line for a rank that lost another: where the last checkpoint is and how to go on."""
    latest = None if run_dir is None else run_dir / "latest"
    kept = (f"the last checkpoint, {run_dir / latest.read_text().strip()}, is intact; "
            f"continue with: torchrun ... -m selfcond train --resume {run_dir}"
            if latest is not None and latest.is_file() else "no checkpoint was written yet")
    first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    return UserError(f"rank {td.get_rank()} lost another rank at step {step} ({first}); {kept}")


def restart_marker(out) -> "os.PathLike | None":
    """Under torchrun, the file (in --out) naming the run directory this job started, so that a
    restart (--max-restarts) resumes it instead of starting another; None outside torchrun."""
    from pathlib import Path

    job = os.environ.get("TORCHELASTIC_RUN_ID")
    return None if job is None else Path(out) / f".torchrun-{job}"


def restarted() -> bool:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def close() -> None:
    """Leave together (the others wait while rank 0 writes its last snapshot), then part."""
    if td.is_available() and td.is_initialized():
        barrier()
        td.destroy_process_group()
