"""Issue 24 probe (usage: python micgan_moves.py RUN): on a trained MIC-GANs run's Q embeddings (frozen), how many modes do candidate
partition moves keep, and at what purity? Candidates: the current sampler run for more sweeps
(fixed Gaussians), the fully collapsed NIW sampler, and greedy merges by the DP posterior ratio."""
import json, math, sys, time
import torch
import selfcond
from selfcond.cluster import crp
from selfcond.cluster.crp_exact import log_marginal
from selfcond.cluster.niw import suff_stats
from selfcond.metrics.clusters import contingency

run = sys.argv[1]
m = selfcond.load(run, device="cpu")
t = m.trainer
p, ds = t.partition, t.dataset
torch.set_num_threads(2)
t0 = time.time()
emb = p.embed(ds).double()
y = ds.labels
print("embedded", emb.shape, round(time.time() - t0, 1), "s", file=sys.stderr)

def score(z, name):
    K = p.k
    cnt = torch.bincount(z, minlength=K).double()
    ct = contingency(z.cpu(), y.cpu(), K, ds.num_classes)
    pur = float(ct.max(1).sum() / ct.sum())
    rec = {"name": name, "k_found": int((cnt / cnt.sum() > 0.01).sum()), "alive": int((cnt > 0).sum()), "purity": round(pur, 4)}
    print(json.dumps(rec)); sys.stdout.flush()
    return rec

z0 = p.table.clone()
score(z0, "table")
gen = torch.Generator().manual_seed(0)
# A: more sweeps of today's sampler (fixed Gaussians of occupied slots)
z = z0.clone()
for r in range(1, 7):
    z = crp.gibbs(emb, z, p.k, 1.0, p.prior, sweeps=5, generator=gen, fixed_loglik=p.gmm.log_prob(emb))
    p.gmm.refit(emb, z, p.prior)
    score(z, f"fixed gaussians, {5 * r} sweeps (refit every 5)")
# B: the fully collapsed NIW sampler from the table
z = z0.clone()
for r in range(1, 5):
    z = crp.gibbs(emb, z, p.k, 1.0, p.prior, sweeps=5, generator=gen)
    score(z, f"collapsed NIW, {5 * r} sweeps")
# C: greedy merges by the collapsed DP posterior ratio (alpha = 1)
def ml(z):
    n, s, S = suff_stats(emb - emb.mean(0), z, p.k)
    return n, s, S
z = z0.clone()
c = emb.mean(0)
prior = p.prior._shifted(c)
while True:
    n, s, S = suff_stats(emb - c, z, p.k)
    live = torch.nonzero(n > 0.5).flatten().tolist()
    base = log_marginal(prior, n, s, S)
    best = (-math.inf, None)
    for i in live:
        for j in live:
            if j <= i: continue
            nm, sm, Sm = n[i] + n[j], s[i] + s[j], S[i] + S[j]
            lm = float(log_marginal(prior, nm[None], sm[None], Sm[None])[0])
            # CRP: one block fewer: -log alpha + lgamma(ni+nj) - lgamma(ni) - lgamma(nj); slots factor log(K-m+1)
            lr = lm - float(base[i] + base[j]) + math.lgamma(float(nm)) - math.lgamma(float(n[i])) - math.lgamma(float(n[j])) + math.log(p.k - len(live) + 1)
            if lr > best[0]: best = (lr, (i, j))
    print("best merge", best, file=sys.stderr)
    if best[0] <= 0 or best[1] is None: break
    i, j = best[1]; z = torch.where(z == j, torch.full_like(z, i), z)
score(z, "greedy DP merges")
