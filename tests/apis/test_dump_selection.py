"""``--dump`` picks the task's prediction writer; grounding keeps the moment_detr one."""
from mmengine.config import Config

from mmvpeft.apis.runner import add_submission_dump, dump_metric_type


def test_dump_writer_follows_the_task_or_the_config():
    assert dump_metric_type(Config(dict(model=dict(type='VideoQA')))) == 'QAAnswerDumper'
    for grounder in ('MomentGrounder', 'MomentRetriever'):  # and its deprecated alias
        assert dump_metric_type(Config(dict(model=dict(type=grounder)))) == \
            'MomentSubmissionDumper'
    assert dump_metric_type(Config(dict(model=dict(type='VideoQA'),
                                        dump_metric='MyDumper'))) == 'MyDumper'
    cfg = Config(dict(model=dict(type='VideoQA'), test_evaluator=dict(type='QAAccuracyMetric')))
    add_submission_dump(cfg, 'out/answers.jsonl')
    assert cfg.test_evaluator == [dict(type='QAAccuracyMetric'),
                                  dict(type='QAAnswerDumper', out_file='out/answers.jsonl')]
