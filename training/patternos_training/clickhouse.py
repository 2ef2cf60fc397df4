"""A minimal ClickHouse HTTP client (stdlib only): enough for the warehouse window and the model registry.

Same environment as the TypeScript side (CLICKHOUSE_URL, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD, CLICKHOUSE_DATABASE).
SQL sent from here must run on ClickHouse 18.16 as well as current servers: no query parameters, values are inlined
through `quote`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TIMEOUT_S = 30.0


class ClickHouseError(Exception):
    """A request failed; `code` is ClickHouse's error code when the server gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ClickHouseConfig:
    url: str
    user: str
    password: str
    database: str

    @staticmethod
    def from_env(env: Mapping[str, str] = os.environ) -> ClickHouseConfig:
        return ClickHouseConfig(
            url=env.get("CLICKHOUSE_URL") or "http://127.0.0.1:18123",
            user=env.get("CLICKHOUSE_USER") or "default",
            password=env.get("CLICKHOUSE_PASSWORD", ""),
            database=env.get("CLICKHOUSE_DATABASE") or "patternos",
        )

    def describe(self) -> str:
        """For logs: never includes the password."""
        return f"{self.url} database {self.database} as {self.user}"


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


class ClickHouse:
    def __init__(self, config: ClickHouseConfig) -> None:
        self.config = config
        token = base64.b64encode(f"{config.user}:{config.password}".encode()).decode()
        # Basic auth keeps the password out of URLs (and so out of proxy and server query logs).
        self._headers = {"Authorization": f"Basic {token}"}

    def _post(self, sql: str, body: bytes = b"", database: bool = True) -> str:
        params = {"query": sql}
        if database:
            params["database"] = self.config.database
        url = self.config.url.rstrip("/") + "/?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.read().decode("utf8")
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf8", "replace").strip()
            match = re.search(r"Code: (\d+)", text)
            raise ClickHouseError(
                f"ClickHouse refused `{sql[:120]}`: {text[:500]}", int(match.group(1)) if match else None
            ) from err
        except (urllib.error.URLError, OSError) as err:
            raise ClickHouseError(f"ClickHouse at {self.config.url} is unreachable: {err}") from err

    def command(self, sql: str, database: bool = True) -> None:
        self._post(sql, database=database)

    def select(self, sql: str) -> list[dict[str, Any]]:
        """Rows as dicts. 64-bit integers arrive as JSON strings (ClickHouse's default); callers convert."""
        text = self._post(sql + "\nFORMAT JSONEachRow")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        body = "\n".join(json.dumps(row, allow_nan=False) for row in rows).encode("utf8")
        self._post(f"INSERT INTO {identifier(table)} FORMAT JSONEachRow", body)
