"""`python -m procl bench [--quick] [--out FILE] [--device auto|cpu|cuda]`: the paper's
tables and claims for procl's default recipe and the paper's recipe side by side, each
lever's measured gain, issues 8 and 19's targets, and speed.

One run generates its datasets afresh, trains every row of its plan in a process pool
(one single-threaded training per core), then builds the tables, verdicts and speed
measurements and writes the markdown report. The package:

    plan.py        Plan (FULL, QUICK, TINY), the datasets, statistics and the claim rule
    trainings.py   the bench's state, dataset generation, the trainings and their pool
    quality.py     the quality tables (baselines, recipes, levers, variants, data sets)
    claims.py      claims C1-C6 per recipe, the levers' gains, issues 8 and 19's targets
    speed.py       speed: inference, training steps, the teacher's share, scale and Explore
    scale.py       distributed selection, torchrun features and training (1 against n processes)
    explore_page.py  Explore's page time on a generated one-hour video (through Streamlit's AppTest)
    human.py       human in the loop: simulated corrections, refine, named F1 against the vote
    choose_k.py    how often the suggested k is within 1 of the true k (the k grid's runs)
    nogrid.py      a generated set as precomputed [T, D] features (no grid), for the no-grid tables
    report.py      the markdown
    run.py         one run: `run_bench` (datasets, trainings, tables, report), the command's
                   arguments and `main`

This __init__ imports nothing, so that `python -m procl.bench.choose_k` and
`python -m procl.bench.human` run their module without Python's warning that the package
had imported it first.

Everything the bench writes lives in `data_dir()/bench/<plan>/` (its own `data/` and
`checkpoints/`, through PROCL_DATA and PROCL_CHECKPOINTS for the duration of the run),
removed at the start of the next run of that plan. Only the full plan writes
docs/RESULTS.md (atomically); --quick and the tests never do.
"""
