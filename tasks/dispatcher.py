"""The service's StepDispatcher on Celery: readable names and arguments in Flower."""


def step_argsrepr(analysis_id: str, chain: str, seq: int) -> str:
    return f"analysis={analysis_id} seq={seq} chain={chain[:8]}"


class CeleryDispatcher:
    def enqueue_step(self, analysis_id: str, chain: str, seq: int) -> None:
        from tasks.steps import init_analysis, rank_step

        task = init_analysis if seq == 0 else rank_step
        task.apply_async(args=(analysis_id, chain, seq),
                         argsrepr=step_argsrepr(analysis_id, chain, seq))
