"""Issue 24 probe (usage: python micgan_merges.py RUN): the greedy merge path of a MIC-GANs run's modes on its frozen Q embeddings.
At each step the pair whose merge costs the least collapsed DP log posterior is merged; printed:
modes left, the cost (nats) and its share of n, and the purity/NMI there. Shows whether any
tempering of the likelihood (a coarsened posterior, Miller & Dunson 2019) has a plateau at the
true number of classes."""
import json, math, sys
import torch
import selfcond
from selfcond.cluster.crp_exact import log_marginal
from selfcond.cluster.niw import suff_stats
from selfcond.metrics.clusters import contingency
from sklearn.metrics import normalized_mutual_info_score as nmi

m = selfcond.load(sys.argv[1], device="cpu")
ZETAS = [float(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else []  # tempered stops
p, ds = m.trainer.partition, m.trainer.dataset
torch.set_num_threads(1)
emb = p.embed(ds).double()
y = ds.labels.cpu()
c = emb.mean(0)
prior = p.prior._shifted(c)
z = p.table.clone()
N = emb.shape[0]
while True:
    n, s, S = suff_stats(emb - c, z, p.k)
    live = torch.nonzero(n > 0.5).flatten().tolist()
    ct = contingency(z.cpu(), y, p.k, ds.num_classes)
    cnt = n / n.sum()
    rec = {"modes": len(live), "k_found": int((cnt > 0.01).sum()), "purity": round(float(ct.max(1).sum() / ct.sum()), 4),
           "nmi": round(float(nmi(y.numpy(), z.cpu().numpy())), 4)}
    if len(live) == 1:
        print(json.dumps(rec)); break
    base = log_marginal(prior, n, s, S)
    best = (-math.inf, None)
    for a in live:
        for b in live:
            if b <= a: continue
            nm = n[a] + n[b]
            lm = float(log_marginal(prior, nm[None], (s[a] + s[b])[None], (S[a] + S[b])[None])[0])
            dl = lm - float(base[a] + base[b])
            if dl > best[0]: best = (dl, (a, b))
    rec["next_merge_loglik"] = round(best[0], 1)
    rec["per_point_of_pair"] = round(best[0] / float(n[best[1][0]] + n[best[1][1]]), 4)
    print(json.dumps(rec)); sys.stdout.flush()
    a, b = best[1]
    z = torch.where(z == b, torch.full_like(z, a), z)


def tempered(zeta: float) -> dict:
    """Greedy merges under the DP posterior with the likelihood raised to the power zeta (the CRP
    prior and the slots' factor untempered), while the best merge raises it: where that stops."""
    z = p.table.clone()
    while True:
        n, s, S = suff_stats(emb - c, z, p.k)
        live = torch.nonzero(n > 0.5).flatten().tolist()
        base = log_marginal(prior, n, s, S)
        best = (0.0, None)
        for a in live:
            for b in live:
                if b <= a: continue
                nm = n[a] + n[b]
                dl = float(log_marginal(prior, nm[None], (s[a] + s[b])[None], (S[a] + S[b])[None])[0]) - float(base[a] + base[b])
                crp = (math.lgamma(float(nm)) - math.lgamma(float(n[a])) - math.lgamma(float(n[b]))
                       - math.log(p.m.alpha) + math.log(p.k - len(live) + 1))
                if zeta * dl + crp > best[0]: best = (zeta * dl + crp, (a, b))
        if best[1] is None:
            ct = contingency(z.cpu(), y, p.k, ds.num_classes)
            return {"zeta": zeta, "modes": len(live), "purity": round(float(ct.max(1).sum() / ct.sum()), 4),
                    "nmi": round(float(nmi(y.numpy(), z.cpu().numpy())), 4)}
        a, b = best[1]
        z = torch.where(z == b, torch.full_like(z, a), z)


for zeta in ZETAS:
    print(json.dumps(tempered(zeta))); sys.stdout.flush()
