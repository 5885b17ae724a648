"""Rows of a Hugging Face Hub data set, read with `datasets.load_dataset`: the fallback of a named set that has no
local copy, and the source of `hf:ORG/NAME[/CONFIG][@REV][:SPLIT]` names and of `intervene data fetch`.

`datasets` honours HF_TOKEN (gated sets such as XSTest and HarmBench), HF_HOME / HF_DATASETS_CACHE (where downloads
are cached, so a set read once is read again offline), HF_ENDPOINT (a hub mirror) and HF_HUB_OFFLINE=1 (never go
out). After the hub proves unreachable once, later look-ups in the same process fail at once instead of retrying.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HF_NAME = re.compile(
    r"^hf:(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<config>[\w.-]+))?(?:@(?P<revision>[\w./-]+))?(?::(?P<split>\S+))?$"
)
HF_NAME_FORMAT = "hf:ORG/NAME[/CONFIG][@REVISION][:SPLIT]"
_MESSAGE_CHARS = 400

# Set once the hub could not be reached (local folders given as the repo do not count), so a process that checks
# several sets waits for the retries only once.
_unreachable: list[str] = []


class HubError(Exception):
    """The hub set could not be read; the message is the hub's (or the `datasets` library's) own."""


@dataclass(frozen=True)
class HubSource:
    """One split of a hub data set, and how its columns map onto the columns of the local copy's file."""

    repo: str
    split: str | None = None
    config: str | None = None
    # A commit (or tag) of the hub repository; None reads its default branch.
    revision: str | None = None
    # Hub column -> local column; columns not named keep their name.
    columns: dict[str, str] = field(default_factory=dict)
    # Columns added to every row (which HarmBench config a behaviour came from).
    constants: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        text = self.repo + (f"/{self.config}" if self.config else "")
        text += f"@{self.revision}" if self.revision else ""
        return text + (f":{self.split}" if self.split else "")


def parse_hf_name(name: str) -> HubSource | None:
    """The source an `hf:` name denotes; None for a string that is not one (ValueError for a malformed one)."""
    if not name.startswith("hf:"):
        return None
    match = _HF_NAME.match(name)
    if match is None:
        raise ValueError(f"{name[:80]!r} is not a hub name: write {HF_NAME_FORMAT}")
    return HubSource(match["repo"], match["split"], match["config"], match["revision"])


def load_hub_rows(source: HubSource) -> list[dict[str, Any]]:
    """Every row of the source with its columns renamed to the local copy's; HubError says why it cannot be read."""
    remote = not Path(source.repo).is_dir()
    if _unreachable and remote:
        raise HubError(f"the hub was not reachable earlier in this process ({_unreachable[0]})")
    try:
        import datasets
    except ImportError:
        raise HubError(
            "the `datasets` package is not installed: pip install 'intervene[intervention]' (or 'datasets')"
        ) from None
    try:
        loaded = datasets.load_dataset(source.repo, source.config, split=source.split, revision=source.revision)
    except ConnectionError as error:
        if remote:
            _unreachable.append(_first_line(error))
        raise HubError(_first_line(error)) from None
    # The hub client and `datasets` raise many types (gated repo, unknown config or split, bad files); each one's
    # message says what went wrong, and the caller adds what to do.
    except Exception as error:
        raise HubError(f"{type(error).__name__}: {_first_line(error)}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise HubError(f"it has the splits {', '.join(loaded)}: name one ({HF_NAME_FORMAT})")
        loaded = next(iter(loaded.values()))
    return [
        {**{source.columns.get(key, key): value for key, value in row.items()}, **source.constants}
        for row in loaded.to_list()
    ]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:_MESSAGE_CHARS]


def forget_unreachable() -> None:
    """Let the next look-up try the hub again (after the network or HF_HUB_OFFLINE changed)."""
    _unreachable.clear()
