"""PyWorkflow: durable plan-and-execute LLM agents.

```python
from pyworkflow import agent, step

@step()
async def search_web(query: str) -> str:
    \"\"\"Search the web for information.\"\"\"
    ...

@agent(pattern="plan_execute", planner_model="claude-opus-4-6",
       executor_model="claude-sonnet-3-7-20250219", tools=[search_web])
async def research_agent(query: str):
    \"\"\"Plan-and-execute research agent.\"\"\"

result = await research_agent.run("Research top 3 AI companies and compare their products")
```
"""

from typing import TYPE_CHECKING

from pyworkflow._lazy import lazy_exports
from pyworkflow.config import Settings, configure
from pyworkflow.exceptions import PyWorkflowError

# Bound here, not on first use: importing the module `pyworkflow.workflow` sets the package's
# attribute `workflow` to that module, which would hide the decorator of the same name.
from pyworkflow.workflow import Step, Workflow, step, workflow

if TYPE_CHECKING:
    from pyworkflow.agents.decorator import agent
    from pyworkflow.agents.result import AgentResult
    from pyworkflow.engine import shutdown
    from pyworkflow.events import Event, EventType, get_events, get_events_sync
    from pyworkflow.hooks import (
        approve_workflow_hook,
        approve_workflow_hook_sync,
        hook,
        resume_hook,
        resume_hook_sync,
    )
    from pyworkflow.runs import RunHandle, get_run, get_run_sync, list_runs

__all__ = [
    "AgentResult",
    "Event",
    "EventType",
    "PyWorkflowError",
    "RunHandle",
    "Settings",
    "Step",
    "Workflow",
    "agent",
    "approve_workflow_hook",
    "approve_workflow_hook_sync",
    "configure",
    "get_events",
    "get_events_sync",
    "get_run",
    "get_run_sync",
    "hook",
    "list_runs",
    "resume_hook",
    "resume_hook_sync",
    "shutdown",
    "step",
    "workflow",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AgentResult": "pyworkflow.agents.result",
        "Event": "pyworkflow.events",
        "EventType": "pyworkflow.events",
        "RunHandle": "pyworkflow.runs",
        "agent": "pyworkflow.agents.decorator",
        "approve_workflow_hook": "pyworkflow.hooks",
        "approve_workflow_hook_sync": "pyworkflow.hooks",
        "get_events": "pyworkflow.events",
        "get_events_sync": "pyworkflow.events",
        "get_run": "pyworkflow.runs",
        "get_run_sync": "pyworkflow.runs",
        "hook": "pyworkflow.hooks",
        "list_runs": "pyworkflow.runs",
        "resume_hook": "pyworkflow.hooks",
        "resume_hook_sync": "pyworkflow.hooks",
        "shutdown": "pyworkflow.engine",
    },
)
