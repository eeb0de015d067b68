# Runtime shared by every mmvpeft config.
default_scope = 'mmvpeft'  # resolves type='...' through mmvpeft's registries

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
custom_hooks = [
    # Stops at the first NaN/inf loss or gradient (naming the step, the term and the
    # samples) and refuses to save a non-finite checkpoint.
    dict(type='NonFiniteCheckHook'),
    # Logs trainable / total parameters per module group when training starts.
    dict(type='ParameterReportHook'),
    # Keeps checkpoints loadable with torch.load(weights_only=True) (resume, load_from).
    dict(type='SafeCheckpointHook'),
    # Writes the trained parameters (adapters, head) + the config as adapter_*.safetensors
    # beside each checkpoint: the file to ship, load with mmvpeft.apis.init_grounder.
    dict(type='AdapterExportHook'),
    # Warns when the validation split shares qids (or video + text) with the training split.
    dict(type='DataChecksHook'),
]

# dist_cfg backend: tools/train.py switches nccl to gloo on machines without CUDA.
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
# Where logged scalars go. LocalVisBackend writes WORK_DIR/<run>/vis_data/scalars.json, which
# tools/analysis/plot_curves.py draws. To send them to a tracker too, uncomment its line
# (each needs its package: pip install tensorboard / wandb / mlflow), or set the same list in
# your own config: visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), ...]).
visualizer = dict(type='Visualizer', vis_backends=[
    dict(type='LocalVisBackend'),
    # dict(type='TensorboardVisBackend'),  # then: tensorboard --logdir WORK_DIR
    # dict(type='WandbVisBackend', init_kwargs=dict(project='mmvpeft')),
    # dict(type='MLflowVisBackend', exp_name='mmvpeft'),
])
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
