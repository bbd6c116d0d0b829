"""Multi-node training through Kubeflow Trainer v2 (a ``TrainJob`` with the ``torch-distributed`` runtime).

The train step of a pipeline run with ``trainer=trainjob`` is a light launcher pod (no GPU) that creates a
TrainJob of N nodes x G GPUs, follows it and copies its model back; the nodes run ``skinattn train`` in the
GPU image. Three parts, each testable without a cluster:

- :mod:`.spec`: the TrainJob object, a pure function of its inputs (checked against the v2.2 API models);
- :mod:`.launcher`: create, follow (conditions, pod phases, warning events) until Complete or Failed, delete;
  it speaks to the API server with the ``kubernetes`` client (tests point it at an HTTP stand-in);
- :mod:`.node`: the command every trainer node runs: fetch the prepared data set from S3, ``torchrun`` with
  the environment the runtime gives (``PET_*``), and on node 0 publish the model folder to S3.

:func:`skinattn.steps.trainjob.trainjob_step` joins them for the KFP component. No kfp here.
"""
