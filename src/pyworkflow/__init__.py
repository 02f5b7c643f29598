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

from pyworkflow.agents.decorator import agent
from pyworkflow.agents.result import AgentResult
from pyworkflow.config import Settings, configure
from pyworkflow.engine import shutdown
from pyworkflow.events import Event, EventType, get_events, get_events_sync
from pyworkflow.exceptions import PyWorkflowError
from pyworkflow.hooks import (
    approve_workflow_hook,
    approve_workflow_hook_sync,
    hook,
    resume_hook,
    resume_hook_sync,
)
from pyworkflow.runs import RunHandle, get_run, get_run_sync, list_runs
from pyworkflow.workflow import Step, Workflow, step, workflow

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
