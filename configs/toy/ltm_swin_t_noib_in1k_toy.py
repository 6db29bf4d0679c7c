# ./ltm_swin_t_in1k_toy.py with the IB term's weight set to 0: the same run
# (same seed, data order, augmentations and cluster passes, which keep the
# global RNG untouched), so the two top-1 numbers differ only by the IB
# term. The hook still refreshes the tables, and the unweighted bound is
# still logged as ``ib_bound`` (monitoring only).
_base_ = ['./ltm_swin_t_in1k_toy.py']

model = dict(head=dict(ib_weight=0.0))
