"""The engine: what trains a run. setup.py builds its parts (device, data, model, optimizer), loop.py runs one
epoch and one evaluation, fit.py drives one run (Arm: one run's parts and records), stack.py drives several in
one process, checkpoint.py saves and restores them, lr_find.py is the LR range test; schedule-free optimizers
(schedulefree.py) and snapshot ensembles (snapshots.py) each have a file of their own."""
