"""ace in a Python agent: record stages and errors, act on interventions, guard a dependency."""

# --8<-- [start:quickstart]
import ace

eng = ace.Ace()  # in memory; ace.Ace("sqlite:///path/ace.db") or ace.Ace.from_env() persist


def act(intervention):
    print(f"intervention for {intervention.task}: {intervention.strategy} ({intervention.reason})")


eng.subscribe(act)

# A stage is timed by a `with` block (or a decorator); an exception marks it failed.
for task in range(30):
    with eng.stage("agent-1", f"task-{task}", "planning") as s:
        s.metric("tokens_in", 800 + task)

# Errors are grouped into patterns; three of one pattern in a task is an accumulation.
for port in (5432, 5433, 5434):
    report = eng.record_error("agent-1", "task-99", "execution", ConnectionError(f"connection to db-1:{port} refused"))
print(report.template, report.occurrences, [s.kind for s in report.signals])


# A circuit breaker guards a flaky dependency.
@eng.breaker("llm", failures=3, wait_seconds=30)
def call_llm(prompt):
    raise TimeoutError("the model did not answer")


for _ in range(4):
    try:
        call_llm("hello")
    except TimeoutError:
        pass
    except ace.CircuitOpenError as e:
        print(f"breaker {e.breaker} is {e.state}; retry after {e.retry_after:.0f} s")

# The playbook keeps strategies that worked.
eng.playbooks.merge("support", [("strategies", "Check the order status before promising a refund")])
print(eng.playbooks.render("support", "refund")["text"] or "(no bullet is out of shadow yet)")

eng.flush()
print(eng.health()["status"], eng.stats()["recorded"])
eng.close()
# --8<-- [end:quickstart]
