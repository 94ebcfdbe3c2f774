"""Does the learned controller win? Controllers compared on the same held-out env seeds.

Every controller plays one episode on each of the same env seeds (a paired design), seeds that
training never uses (`TRAINING_SEED_LIMIT`). Each figure is reported with a BCa bootstrap
confidence interval, and a comparison of two controllers bootstraps the per-seed differences, so
the variance shared by both controllers on a seed (an easy or hard host initialization) cancels
out; beside each comparison's interval stands the p-value of a paired sign-flip permutation test.

One module per step:
- `controllers`: parsing `--controllers` into specs and building each controller;
- `settings`: the one env config and data options all controllers share, from the checkpoints;
- `running`: the held-out seeds and the episodes;
- `statistics`: intervals and p-values (why BCa, and what it covers at 10 seeds);
- `summary`: per-controller estimates and the paired comparisons;
- `results`: the JSON and CSV results files.
"""

from esper.simic.evaluation.controllers import (
    CONTROLLER_FORMS,
    ControllerKind,
    ControllerSpec,
    build_policy,
    checkpoint_config,
    checkpoint_file,
    parse_controllers,
)
from esper.simic.evaluation.results import (
    CSV_COLUMNS,
    METHODS,
    check_results_path,
    csv_rows,
    results_dict,
    write_results,
)
from esper.simic.evaluation.running import EvaluationResult, evaluate_controllers, held_out_seeds
from esper.simic.evaluation.settings import (
    evaluation_data_options,
    evaluation_env_config,
    for_task,
    is_transfer,
    with_budget,
    with_reward_of,
)
from esper.simic.evaluation.statistics import (
    EXACT_SIGN_FLIP_LIMIT,
    bootstrap_ci,
    paired_bootstrap_ci,
    paired_p_value,
    sign_flip_p_value,
)
from esper.simic.evaluation.summary import (
    COMPARED_METRICS,
    METRICS,
    Comparison,
    ControllerSummary,
    Estimate,
    EvaluationSummary,
    most_common_growth,
    summarize,
)

__all__ = [
    "COMPARED_METRICS",
    "CONTROLLER_FORMS",
    "CSV_COLUMNS",
    "EXACT_SIGN_FLIP_LIMIT",
    "METHODS",
    "METRICS",
    "Comparison",
    "ControllerKind",
    "ControllerSpec",
    "ControllerSummary",
    "Estimate",
    "EvaluationResult",
    "EvaluationSummary",
    "bootstrap_ci",
    "build_policy",
    "check_results_path",
    "checkpoint_config",
    "checkpoint_file",
    "csv_rows",
    "evaluate_controllers",
    "evaluation_data_options",
    "evaluation_env_config",
    "for_task",
    "held_out_seeds",
    "is_transfer",
    "most_common_growth",
    "paired_bootstrap_ci",
    "paired_p_value",
    "parse_controllers",
    "results_dict",
    "sign_flip_p_value",
    "summarize",
    "with_budget",
    "with_reward_of",
    "write_results",
]
