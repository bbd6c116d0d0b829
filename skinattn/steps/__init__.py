"""The steps of the Kubeflow pipelines, as plain functions on folders and files.

One module per area, mirroring ``components/``: :mod:`~skinattn.steps.data`, :mod:`~skinattn.steps.training`,
:mod:`~skinattn.steps.evaluation`, :mod:`~skinattn.steps.registry`, :mod:`~skinattn.steps.scoring` and
:mod:`~skinattn.steps.validation` (every pipeline's first task). Each KFP
component is a thin wrapper that calls exactly one function here with its artifact paths
(``from skinattn.steps import data as steps``, inside the component body): the steps stay thin too, the
logic lives in the library packages they call, where it is tested without Kubeflow, and the component
bodies stay small enough for KFP to ship as source code. Nothing here imports kfp; where a step reports to
the KFP UI, it is handed the artifact object and only calls its ``log_*`` methods.

Every function takes output folders that may not exist yet and fills them; all writes go through
``skinattn.fileio`` (temporary name, then rename) in the functions called. The library is imported inside
the functions, so that a component pays only for what its step uses (and the scoring step can set tqdm's
environment before tqdm is imported); this package itself imports nothing.
"""
