# imrl-bench: raw data -> splits -> runs -> metrics JSON -> tables.
# Default: the embedded synthetic dataset (config/config.yaml); the paper's grid:
#   snakemake --cores all --resources gpu=4 --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


# The default config only when the command line names none: Snakemake would otherwise
# merge a --configfile into it (the paper's grid would inherit the synthetic dataset).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/datasets.smk"
include: "rules/train.smk"
include: "rules/report.smk"


localrules:
    all,
    report,


# The runs are named too: a failed run set aside (below) is then missing, and retried,
# even though the tables made from its failed record are up to date.
rule all:
    input:
        offline_runs(),
        online_runs(),
        report_outputs(),
        environment_outputs(),
        table1_outputs(),


# A failed run writes its record (Table II shows "failed"), then is listed here, set aside
# and retried by the next run of the workflow; the exit status says that runs failed.
onsuccess:
    failed = set_aside_failed_runs()
    if failed:
        raise WorkflowError(failed)


onerror:
    failed = set_aside_failed_runs()
    if failed:
        print(failed, file=sys.stderr)
