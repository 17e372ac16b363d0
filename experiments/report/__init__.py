r"""Tables and plots from finished sweeps.

    python -m experiments.report outputs/multirun/2024-05-01/12-00-00
    python -m experiments.report SWEEP_A SWEEP_B --metrics test_acc,best_test_acc --sort -test_acc
    python -m experiments.report SWEEP --group-by scheduler,optimizer.lr --out paper/tables
    python -m experiments.report SWEEP --compare val_acc --baseline constant --target val_acc=0.88
    python -m experiments.report experiments/d2l_schedulers/results.csv --out experiments/d2l_schedulers

Runs are grouped by their Hydra overrides other than the seed and a branch's parent folder (each seed's branch
names its own seed's parent) and the keys that cannot change a number (resume, logger, trainer.progress,
trainer.checkpoint); `--group-by` names the keys instead. Several folders are
pooled, e.g. one sweep launched in two goes. Each group gets n (completed / runs), the mean, the sample std
(ddof=1) and a 95 % confidence interval of the mean (Student t, cut to what the figure can be) over its completed
runs. Diverged, failed, interrupted, unfinished (no summary.json) and never-run jobs are counted and listed with
the reason, never averaged: a diverged run's figures come from its last finite epoch, not from a finished
schedule. Never-run jobs are found by expanding the sweep in multirun.yaml (basic sweeper only). A file that
cannot be read whole never stops the report: its run is listed under "Not included" with the file and the
reason, or counted with a line under "Notes" when its summary.json is whole; a figure that is NaN or infinite is
listed and left out of its column alone. A run folder reached twice is counted once. Runs stuck at chance (their
training accuracy never above 1.5 x 1/num_classes) or collapsed back to it are counted per group, noted, and
drawn apart in the figures.

The groups are compared on one metric (the first of --metrics with a better direction, or --compare). The
reference is the group with the best mean of that metric's validation figure (val_acc for test_acc) among the
groups whose runs all completed, or the --baseline named in advance; without a validation figure the table says
that the best was chosen on the test figure itself. The tests (two-sided t-tests, paired by seed when two groups
have the same seeds, Welch's otherwise; none without spread) form one family, Holm-corrected across all of it:
every pair of groups (--comparisons all-pairs, the default), every group against the baseline, or against the
best (a choice made by looking). Each comparison also gets a bootstrap interval of its difference, the
probability of improvement P(A > B) with its interval and the seeds that would detect the difference with 80 %
power. --target FIGURE=VALUE adds the epoch and the training time at which each run first reached a value.

Writes to --out (default: <first folder>/report/):
  table.md        the table (also printed), its pairwise comparisons and the runs left out of it, with the reason
  table.tex       a booktabs tabular that fits a page (mean ± CI of the test figures), its caption above it
  results.csv     one row per run: every override as a column, the summary figures as fractions, a branch's
                  record of its parent (parent_folder, shared_epochs, shared_wall_time_s)
  groups.csv      one row per group: n, mean, std and 95 % CI of every metric as fractions, the test's p-values
  pairs.csv       one row per comparison of the family
  lr, test_acc, train_test_acc (a panel per split), gap, final_gap: each as .png, .pdf and .svg
  branches.csv    where the runs include branches (branch.parent, branch.epoch): one row per branch group, its own
                  epochs and wall time and its family's cost, the epochs shared with the parent counted once;
                  anytime (.png, .pdf, .svg): parents, their branches and every other group's final epoch on one
                  epoch axis; a "Branches" section in table.md
  index.html      one page, offline: interactive charts, the table, the runs (dashboard.py); --watch and
                  --serve PORT keep it and the tables current while the sweep runs (live.py)
Given results.csv files instead of folders, it writes the tables alone, branches.csv and the Branches section
included (no results.csv, figures or page).

Modules, each importing only those above it: columns, statistics, runs, groups, compare, branches, targets, tables,
plots, dashboard, build (write_report), live (--watch), cli (main).
"""

from experiments.report.build import NoRunsError, OutputError, Report, write_report
from experiments.report.cli import main

__all__ = ["NoRunsError", "OutputError", "Report", "main", "write_report"]
