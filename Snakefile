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


rule all:
    input:
        report_outputs(),
        environment_outputs(),
        table1_outputs(),
