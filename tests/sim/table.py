"""A simulated DynamoDB table of Photos items, and a simulated S3 that holds some objects and not others.

The table applies the conditional put (`attribute_not_exists(photoId)`, answering the old item with
ReturnValuesOnConditionCheckFailure=ALL_OLD) and PartiQL `INSERT` (`DuplicateItem`, with the old item). A put
without the condition replaces the item, as DynamoDB would: the simulator never prevents an overwrite, it
detects one (`overwrites`). `first` keeps every item as its first write left it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from tests.sim.history import History

Item = dict[str, dict[str, str]]
_NAMES = re.compile(r"'(\w+)': \?")
CONDITION = "attribute_not_exists(photoId)"


@dataclass(slots=True)
class Write:
    who: str
    photo_id: str


class SimTable:
    def __init__(self, name: str, history: History) -> None:
        self.name = name
        self.arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}"
        self.items: dict[str, Item] = {}
        self.first: dict[str, Item] = {}
        self.inserts: list[Write] = []
        self.overwrites: list[Write] = []
        self._history = history

    def seed(self, item: Item) -> None:
        self.items[item["photoId"]["S"]] = self.first[item["photoId"]["S"]] = item

    def put(self, item: Item, condition: str | None, who: str) -> Item | None:
        """None once written; the stored item if the condition failed."""
        photo_id = item["photoId"]["S"]
        old = self.items.get(photo_id)
        if old is not None and condition == CONDITION:
            self._history.add(who, "table.exists", photo_id)
            return old
        if old is not None:
            self.overwrites.append(Write(who, photo_id))
            self._history.add(who, "table.OVERWRITE", photo_id)
        else:
            self.first[photo_id] = item
            self.inserts.append(Write(who, photo_id))
            self._history.add(who, "table.insert", photo_id, item["s3Key"]["S"])
        self.items[photo_id] = item
        return None

    def insert(self, statement: dict[str, Any], who: str, *, with_old: bool = True) -> dict[str, Any]:
        """One PartiQL INSERT's answer: {} or {"Error": ...}."""
        names = _NAMES.findall(statement["Statement"])
        item = dict(zip(names, statement["Parameters"], strict=True))
        old = self.put(item, CONDITION, who)
        if old is None:
            return {}
        error: dict[str, Any] = {"Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"}
        if with_old:  # not every answer carries it: then the store reads the item (GetItem)
            error["Item"] = old
        return {"Error": error}


@dataclass(slots=True)
class SimObjects:
    """The S3 objects that exist, by (bucket, key), with their size."""

    objects: dict[tuple[str, str], int] = field(default_factory=dict)

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        size = self.objects.get((bucket, key))
        if size is None:
            return None
        return {
            "ContentLength": size,
            "ETag": f'"{hashlib.md5(f"{bucket}/{key}".encode(), usedforsecurity=False).hexdigest()}"',
        }
