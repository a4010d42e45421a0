"""Intake forms: versioned form definitions (FHIR R4 Questionnaire), what a consultation type asks
for before the visit, and a patient's answers for one appointment (QuestionnaireResponse data).

The supported Questionnaire subset: items of type group, display, string, text, boolean,
decimal, integer, date, choice and open-choice; `required`, `repeats` (repeating questions and
repeating groups), `maxLength`, `answerOption` (valueCoding or valueString), and `enableWhen`
with the operators `exists`, `=` and `!=` (`enableBehavior` all or any). Anything else in an
item is refused when the form is published, so that a patient is never shown a question that
the server cannot check.

A `FormResponse` belongs to one patient's appointment and one form, and stays on the form
version it was started on. A draft may be incomplete (only its shape is checked); submission
checks every answer and reports every problem at once, each under the path of linkIds that
leads to it (`history/conditions`, a repeated group's instance as `medications[1]/name`, a
repeated answer as `symptoms/list[2]`). Answers to questions that do not apply (their
enableWhen is false) are dropped on submission, as FHIR wants no answers on disabled items.
Messages never quote an answer: answers are health content.

These event types are the storage format and are versioned with care.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.documents import DocumentType
from domain.errors import Conflict, FieldError, InvalidInput, Rejections
from domain.ids import stream_id

CONTEXT = "forms"
ITEM_TYPES = ("group", "display", "string", "text", "boolean", "decimal", "integer", "date",
              "choice", "open-choice")
CONTAINERS = frozenset({"group", "display"})
VALUE_KEY = {"boolean": "valueBoolean", "decimal": "valueDecimal", "integer": "valueInteger",
             "date": "valueDate", "string": "valueString", "text": "valueString"}
OPERATORS = ("exists", "=", "!=")
STRING_MAX, TEXT_MAX, HARD_MAX = 200, 2000, 10_000  # characters, unless maxLength says less
MAX_ITEMS, MAX_DEPTH, MAX_ANSWERS = 300, 6, 2000
_LINK_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_FORM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DATE = re.compile(r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$")
_ITEM_KEYS = frozenset({"linkId", "text", "type", "required", "repeats", "maxLength",
                        "answerOption", "enableWhen", "enableBehavior", "item", "prefix",
                        "definition", "code", "extension", "id"})
WORDS = {"boolean": "Answer yes or no (true or false).", "integer": "Answer with a whole number.",
         "decimal": "Answer with a number.",
         "date": "Answer with a date as YYYY-MM-DD (or YYYY-MM, or YYYY).",
         "string": "Answer with text.", "text": "Answer with text."}


class FormClosed(Conflict):
    code = "form-submitted"
    title = "This form has already been sent"


def form_definition_id(form_id: str) -> UUID:
    return stream_id("form-definition", form_id)


def requirements_id(consultation_type_id: str) -> UUID:
    return stream_id("visit-requirements", consultation_type_id)


def form_response_id(appointment_id: UUID, form_id: str) -> UUID:
    return stream_id("form-response", appointment_id, form_id)


def check_form_id(form_id: str, errors: Rejections, name: str = "form_id") -> None:
    if not _FORM_ID.match(form_id):
        errors.add(name, "Use 1 to 63 lower-case letters, digits and '-', starting with a letter "
                   "or digit.")


# ---- the Questionnaire subset ---------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    system: str | None
    code: str | None
    display: str | None
    string: str | None

    @property
    def key(self) -> tuple[str, str]:
        return ("string", self.string or "") if self.code is None else \
            ("coding", f"{self.system or ''}|{self.code}")

    @property
    def words(self) -> str:
        return (self.string or "") if self.code is None else (self.display or self.code)


@dataclass(frozen=True)
class Condition:
    question: str
    operator: str
    answer: Any  # exists: a bool; = and !=: an answer key (see `answer_key`)


@dataclass(frozen=True)
class Item:
    link_id: str
    text: str
    type: str
    required: bool = False
    repeats: bool = False
    max_length: int | None = None
    options: tuple[Option, ...] = ()
    enable_when: tuple[Condition, ...] = ()
    enable_any: bool = False
    items: tuple[Item, ...] = ()

    @property
    def is_question(self) -> bool:
        return self.type not in CONTAINERS

    @property
    def limit(self) -> int:
        return self.max_length or (TEXT_MAX if self.type == "text" else STRING_MAX)


@dataclass(frozen=True)
class Questionnaire:
    title: str
    items: tuple[Item, ...]
    by_link_id: dict[str, Item] = field(compare=False)

    def questions(self) -> list[Item]:
        return [i for i in self.by_link_id.values() if i.is_question]


def parse_questionnaire(resource: Any) -> Questionnaire:
    """The Questionnaire as CareBridge supports it, or every reason it is refused at once."""
    errors = Rejections()
    if not isinstance(resource, dict):
        raise InvalidInput([FieldError("body", "Send a FHIR Questionnaire as a JSON object.")])
    if resource.get("resourceType") != "Questionnaire":
        errors.add("resourceType", "Must be \"Questionnaire\".")
    if resource.get("status", "active") != "active":
        errors.add("status", "Publish an active questionnaire (status \"active\").")
    title = resource.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        errors.add("title", "Give the form a title (1 to 200 characters).")
    seen: dict[str, Item | None] = {}  # None: named by an item that was refused
    conditions: list[tuple[str, Condition]] = []
    items = _items(resource.get("item"), "item", 1, errors, seen, conditions)
    if not items and not errors.errors:
        errors.add("item", "A form needs at least one question.")
    for path, condition in conditions:
        target = seen.get(condition.question)
        if target is None or not target.is_question:
            errors.add(path, "Refer to the linkId of a question of this form.")
    if len(seen) > MAX_ITEMS:
        errors.add("item", f"A form may have at most {MAX_ITEMS} items.")
    errors.raise_if_any()
    return Questionnaire(str(title).strip(), tuple(items),
                         {k: v for k, v in seen.items() if v is not None})


def _items(raw: Any, path: str, depth: int, errors: Rejections, seen: dict[str, Item | None],
           conditions: list[tuple[str, Condition]]) -> list[Item]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors.add(path, "Must be a list of items.")
        return []
    if depth > MAX_DEPTH:
        errors.add(path, f"Nest groups at most {MAX_DEPTH} deep.")
        return []
    parsed = []
    for n, item in enumerate(raw):
        found = _item(item, f"{path}[{n}]", depth, errors, seen, conditions)
        if found is not None:
            parsed.append(found)
    return parsed


def _item(raw: Any, path: str, depth: int, errors: Rejections, seen: dict[str, Item | None],
          conditions: list[tuple[str, Condition]]) -> Item | None:
    if not isinstance(raw, dict):
        errors.add(path, "Must be an item (a JSON object).")
        return None
    before = len(errors.errors)
    for key in sorted(set(raw) - _ITEM_KEYS):
        errors.add(f"{path}.{key}", "Not supported by CareBridge forms; remove it.")
    link_id, kind, text = raw.get("linkId"), raw.get("type"), raw.get("text", "")
    if not isinstance(link_id, str) or not _LINK_ID.match(link_id):
        errors.add(f"{path}.linkId", "Give a linkId of 1 to 64 letters, digits, '.', '_' or '-'.")
        link_id = None
    elif link_id in seen:
        errors.add(f"{path}.linkId", "Each linkId may be used once in a form.")
        link_id = None
    else:
        seen[link_id] = None
    if kind not in ITEM_TYPES:
        errors.add(f"{path}.type", "Use one of: " + ", ".join(ITEM_TYPES) + ".")
    if not isinstance(text, str) or len(text) > 1000 or (kind != "group" and not text.strip()):
        errors.add(f"{path}.text", "Give the words the patient reads (1 to 1000 characters).")
    _attribute_errors(raw, kind, path, errors)
    options = _options(raw.get("answerOption"), kind, path, errors)
    when = _conditions(raw.get("enableWhen"), path, errors, conditions)
    children = _items(raw.get("item"), f"{path}.item", depth + 1, errors, seen, conditions)
    if kind == "group" and not children:
        errors.add(f"{path}.item", "A group needs at least one item.")
    elif kind != "group" and raw.get("item"):
        errors.add(f"{path}.item", "Only groups hold items here.")
    if len(errors.errors) > before or link_id is None:
        return None
    item = Item(link_id, text.strip(), str(kind), bool(raw.get("required", False)),
                bool(raw.get("repeats", False)), raw.get("maxLength"), options, when,
                raw.get("enableBehavior") == "any", tuple(children))
    seen[link_id] = item
    return item


def _attribute_errors(raw: dict[str, Any], kind: Any, path: str, errors: Rejections) -> None:
    for flag in ("required", "repeats"):
        if not isinstance(raw.get(flag, False), bool):
            errors.add(f"{path}.{flag}", "Must be true or false.")
    if kind == "display" and (raw.get("required") or raw.get("repeats")):
        errors.add(f"{path}.type", "A display item is never answered: no required or repeats.")
    max_length = raw.get("maxLength")
    if max_length is not None and (kind not in ("string", "text", "open-choice")
                                   or not isinstance(max_length, int)
                                   or isinstance(max_length, bool)
                                   or not 1 <= max_length <= HARD_MAX):
        errors.add(f"{path}.maxLength", f"Only for string, text and open-choice: 1 to {HARD_MAX}.")
    if raw.get("enableBehavior", "all") not in ("all", "any"):
        errors.add(f"{path}.enableBehavior", "Use \"all\" or \"any\".")


def _options(raw: Any, kind: Any, path: str, errors: Rejections) -> tuple[Option, ...]:
    if raw is None:
        if kind in ("choice", "open-choice"):
            errors.add(f"{path}.answerOption", "A choice needs its answer options.")
        return ()
    if kind not in ("choice", "open-choice") or not isinstance(raw, list) or not raw:
        errors.add(f"{path}.answerOption", "Only choice and open-choice questions have answer "
                   "options (a non-empty list).")
        return ()
    options = []
    for n, entry in enumerate(raw):
        where = f"{path}.answerOption[{n}]"
        coding = entry.get("valueCoding") if isinstance(entry, dict) else None
        string = entry.get("valueString") if isinstance(entry, dict) else None
        if isinstance(coding, dict) and isinstance(coding.get("code"), str) and coding["code"]:
            options.append(Option(_text_or_none(coding.get("system")), coding["code"],
                                  _text_or_none(coding.get("display")), None))
        elif isinstance(string, str) and string.strip() and len(string) <= 200:
            options.append(Option(None, None, None, string.strip()))
        else:
            errors.add(where, "Give a valueCoding with a code, or a valueString (up to 200 "
                       "characters).")
    if len({o.key for o in options}) != len(options):
        errors.add(f"{path}.answerOption", "Each answer option may be listed once.")
    return tuple(options)


def _conditions(raw: Any, path: str, errors: Rejections,
                conditions: list[tuple[str, Condition]]) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        errors.add(f"{path}.enableWhen", "Must be a non-empty list of conditions.")
        return ()
    parsed = []
    for n, entry in enumerate(raw):
        where = f"{path}.enableWhen[{n}]"
        if not isinstance(entry, dict):
            errors.add(where, "Must be a condition (a JSON object).")
            continue
        operator, question = entry.get("operator"), entry.get("question")
        answers = [k for k in entry if k.startswith("answer")]
        if operator not in OPERATORS:
            errors.add(f"{where}.operator", "Use one of: exists, =, !=.")
            continue
        if not isinstance(question, str) or len(answers) != 1:
            errors.add(where, "Name the question and give exactly one answer[x].")
            continue
        value: Any = entry[answers[0]]
        if operator == "exists":
            if answers[0] != "answerBoolean" or not isinstance(value, bool):
                errors.add(where, "exists compares with answerBoolean true or false.")
                continue
            answer: Any = value
        else:
            answer = answer_key({"value" + answers[0][len("answer"):]: value})
            if answer is None:
                errors.add(where, "Give the answer as answerBoolean, answerInteger, "
                           "answerDecimal, answerDate, answerString or answerCoding.")
                continue
        condition = Condition(question, operator, answer)
        conditions.append((where, condition))
        parsed.append(condition)
    return tuple(parsed)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def answer_key(answer: Any) -> tuple[str, Any] | None:
    """What an answer means, comparable across answers: ("coding", "system|code"),
    ("string", text), ("boolean", b), ("number", n) or ("date", text); None if it is none."""
    if not isinstance(answer, dict) or len(answer) != 1:
        return None
    (name, value), = answer.items()
    if name == "valueCoding" and isinstance(value, dict) and isinstance(value.get("code"), str):
        return "coding", f"{value.get('system') or ''}|{value['code']}"
    if name == "valueString" and isinstance(value, str):
        return "string", value.strip()
    if name == "valueBoolean" and isinstance(value, bool):
        return "boolean", value
    if name in ("valueInteger", "valueDecimal") and isinstance(value, int | float) \
            and not isinstance(value, bool):
        return "number", value
    if name == "valueDate" and isinstance(value, str):
        return "date", value
    return None


# ---- checking answers -----------------------------------------------------------------------

def shape_errors(items: Any, path: str = "item", depth: int = 1,
                 counted: list[int] | None = None) -> list[FieldError]:
    """What a draft must get right: a list of items with linkIds and answers of bounded size.
    Whether the answers fit the questions is checked on submission."""
    counted = counted if counted is not None else [0]
    if not isinstance(items, list):
        return [FieldError(path, "Must be a list of items.")]
    if depth > MAX_DEPTH + 1:
        return [FieldError(path, "Nested too deep.")]
    errors: list[FieldError] = []
    for n, item in enumerate(items):
        where = f"{path}[{n}]"
        if not isinstance(item, dict) or not isinstance(item.get("linkId"), str) \
                or not _LINK_ID.match(item["linkId"]):
            errors.append(FieldError(where, "Each item needs the linkId of its question."))
            continue
        answers = item.get("answer", [])
        if not isinstance(answers, list) or any(answer_key(a) is None for a in answers):
            errors.append(FieldError(f"{where}.answer", "Give answers as a list of value[x] "
                                     "objects, one value each."))
            continue
        counted[0] += len(answers) + 1
        if any(len(str(a)) > HARD_MAX + 100 for a in answers):
            errors.append(FieldError(f"{where}.answer", f"Keep each answer under {HARD_MAX} "
                                     "characters."))
        errors += shape_errors(item.get("item", []), f"{where}.item", depth + 1, counted)
    if depth == 1 and counted[0] > MAX_ANSWERS:
        errors.append(FieldError(path, f"At most {MAX_ANSWERS} answers in a form."))
    return errors


def given_answers(items: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every answer given, by linkId, wherever it is (enableWhen looks anywhere in the form)."""
    found: dict[str, list[Any]] = {}
    for item in items:
        found.setdefault(item["linkId"], []).extend(
            key for key in map(answer_key, item.get("answer", [])) if key is not None)
        for child, keys in given_answers(item.get("item", [])).items():
            found.setdefault(child, []).extend(keys)
    return found


def enabled(item: Item, answers: dict[str, list[Any]]) -> bool:
    if not item.enable_when:
        return True
    results = [_holds(c, answers.get(c.question, [])) for c in item.enable_when]
    return any(results) if item.enable_any else all(results)


def _holds(condition: Condition, given: list[Any]) -> bool:
    if condition.operator == "exists":
        return bool(given) == condition.answer
    equal = any(_same(g, condition.answer) for g in given)
    return equal if condition.operator == "=" else bool(given) and not equal


def _same(given: tuple[str, Any], wanted: tuple[str, Any]) -> bool:
    if given[0] == "coding" and wanted[0] == "coding" and wanted[1].startswith("|"):
        return given[1].split("|", 1)[1] == wanted[1][1:]  # no system named: the code decides
    return given == wanted


def progress(questionnaire: Questionnaire, items: list[dict[str, Any]]) -> tuple[int, int]:
    """(answered, questions): the questions that apply now and how many have an answer."""
    answers = given_answers(items)
    counted = answered = 0

    def walk(level: tuple[Item, ...]) -> None:
        nonlocal counted, answered
        for item in level:
            if not enabled(item, answers):
                continue
            if item.is_question:
                counted += 1
                answered += bool(answers.get(item.link_id))
            walk(item.items)

    walk(questionnaire.items)
    return answered, counted


def check_submission(questionnaire: Questionnaire,
                     items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The completed response's items (with each question's text, as QuestionnaireResponse
    carries it), or every problem at once (InvalidInput, fields named by linkId paths)."""
    errors = Rejections()
    for error in shape_errors(items):
        errors.add(error.field, error.message)
    errors.raise_if_any()
    answers = given_answers(items)
    kept = _level(questionnaire.items, items, "", answers, errors)
    errors.raise_if_any()
    return kept


def _level(definitions: tuple[Item, ...], given: list[dict[str, Any]], prefix: str,
           answers: dict[str, list[Any]], errors: Rejections) -> list[dict[str, Any]]:
    by_link: dict[str, list[dict[str, Any]]] = {}
    for item in given:
        by_link.setdefault(item["linkId"], []).append(item)
    known = {d.link_id for d in definitions}
    for link_id in by_link:
        if link_id not in known:
            errors.add(prefix + link_id, "This is not a question of this form (here); remove it.")
    kept: list[dict[str, Any]] = []
    for definition in definitions:
        path, present = prefix + definition.link_id, by_link.get(definition.link_id, [])
        if not enabled(definition, answers) or definition.type == "display":
            continue
        if definition.type == "group":
            kept += _group(definition, present, path, answers, errors)
        else:
            kept += _question(definition, present, path, errors)
    return kept


def _group(group: Item, present: list[dict[str, Any]], path: str,
           answers: dict[str, list[Any]], errors: Rejections) -> list[dict[str, Any]]:
    if len(present) > 1 and not group.repeats:
        errors.add(path, "This section may be filled in once; send its answers in one item.")
    instances = present or ([] if group.repeats else [{"linkId": group.link_id}])
    kept = []
    for n, instance in enumerate(instances):
        where = f"{path}[{n}]" if group.repeats else path
        if instance.get("answer"):
            errors.add(where, "A section has no answer of its own; answer its questions.")
        children = _level(group.items, instance.get("item", []), where + "/", answers, errors)
        if children:
            kept.append({"linkId": group.link_id, "text": group.text, "item": children})
    if group.required and not kept:
        errors.add(path, "Answer at least one question in this section.")
    return kept


def _question(question: Item, present: list[dict[str, Any]], path: str,
              errors: Rejections) -> list[dict[str, Any]]:
    if len(present) > 1:
        errors.add(path, "This question appears more than once; send its answers in one item.")
        return []
    raw = present[0].get("answer", []) if present else []
    if present and present[0].get("item"):
        errors.add(path, "Answers here have no nested items.")
    if len(raw) > 1 and not question.repeats:
        errors.add(path, "Give one answer to this question.")
        return []
    kept = []
    for n, answer in enumerate(raw):
        value, problem = _answer(question, answer)
        if problem is not None:
            errors.add(f"{path}[{n}]" if question.repeats else path, problem)
        elif value is not None:
            kept.append(value)
    if question.required and not raw:
        errors.add(path, "Answer this question.")
    return [{"linkId": question.link_id, "text": question.text, "answer": kept}] if kept else []


def _answer(question: Item, answer: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The answer as stored, or what is wrong with it (never quoting it)."""
    key = answer_key(answer)
    kind = question.type
    if kind in ("choice", "open-choice"):
        options = {o.key: o for o in question.options}
        chosen = _option(key, options)
        if chosen is not None:
            return _option_value(chosen), None
        if kind == "open-choice" and key is not None and key[0] == "string":
            return _string(question, key[1])
        return None, "Choose one of the options given" + (
            ", or write your own answer." if kind == "open-choice" else ".")
    if key is None or VALUE_KEY[kind] not in answer:
        return None, WORDS[kind]
    value = answer[VALUE_KEY[kind]]
    if kind == "integer" and not isinstance(value, int):
        return None, WORDS[kind]
    if kind in ("string", "text"):
        return _string(question, key[1])
    if kind == "date" and not _valid_date(value):
        return None, WORDS[kind]
    return {VALUE_KEY[kind]: value}, None


def _option(key: tuple[str, Any] | None, options: dict[tuple[str, str], Option]) -> Option | None:
    if key is None:
        return None
    if key in options:
        return options[key]
    if key[0] == "coding" and key[1].startswith("|"):  # a code sent without its system
        matches = [o for o in options.values() if o.code == key[1][1:]]
        return matches[0] if len(matches) == 1 else None
    if key[0] == "string":  # a valueString that names a coded option's code exactly
        return options.get(("string", key[1]))
    return None


def _option_value(option: Option) -> dict[str, Any]:
    if option.code is None:
        return {"valueString": option.string}
    coding = {"code": option.code}
    if option.system:
        coding["system"] = option.system
    if option.display:
        coding["display"] = option.display
    return {"valueCoding": coding}


def _string(question: Item, words: str) -> tuple[dict[str, Any] | None, str | None]:
    if not words:
        return None, "Write an answer, or leave the question out."
    if len(words) > question.limit:
        return None, f"Keep the answer under {question.limit} characters."
    if question.type == "string" and "\n" in words:
        return None, "Keep this answer to one line."
    return {"valueString": words}, None


def _valid_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    parts = value.split("-")
    try:
        date(int(parts[0]), int(parts[1]) if len(parts) > 1 else 1,
             int(parts[2]) if len(parts) > 2 else 1)
    except ValueError:
        return False
    return True


# ---- aggregates -----------------------------------------------------------------------------

def stored_resource(resource: dict[str, Any], form_id: str, version: int) -> dict[str, Any]:
    """The Questionnaire as published: CareBridge sets its id, version, url and status."""
    return {**{k: v for k, v in resource.items() if k not in ("id", "version", "meta", "date")},
            "resourceType": "Questionnaire", "id": form_id, "version": str(version),
            "url": resource.get("url") or f"urn:carebridge:form:{form_id}", "status": "active"}


class FormDefinition(CareAggregate):
    """One form and every version published of it (FHIR R4 Questionnaire resources)."""

    TOPIC = topic(CONTEXT, "FormDefinition")

    @event("Created", topic=topic(CONTEXT, "FormDefinition.Created"))
    def __init__(self, form_id: str, by: str, at: datetime) -> None:
        self.form_id = form_id
        self.versions: dict[int, dict[str, Any]] = {}
        self.current_version: int | None = None

    @classmethod
    def create_id(cls, form_id: str, **_: object) -> UUID:
        return form_definition_id(form_id)

    def publish(self, resource: dict[str, Any], by: str, at: datetime) -> bool:
        """A new version; the same content as the current version again records nothing."""
        parse_questionnaire(resource)
        if self.current_version is not None and stored_resource(
                resource, self.form_id, self.current_version) == self.versions[self.current_version]:
            return False
        version = (self.current_version or 0) + 1
        self._published(version=version,
                        questionnaire=stored_resource(resource, self.form_id, version), by=by, at=at)
        return True

    def questionnaire(self, version: int | None = None) -> Questionnaire:
        chosen = version if version is not None else self.current_version
        return parse_questionnaire(self.versions[chosen or 0])

    @event("VersionPublished", topic=topic(CONTEXT, "FormDefinition.VersionPublished"))
    def _published(self, version: int, questionnaire: dict[str, Any], by: str,
                   at: datetime) -> None:
        self.versions[version] = questionnaire
        self.current_version = version


class VisitRequirements(CareAggregate):
    """What a consultation type asks of the patient before the visit: forms and uploads."""

    TOPIC = topic(CONTEXT, "VisitRequirements")

    @event("Created", topic=topic(CONTEXT, "VisitRequirements.Created"))
    def __init__(self, consultation_type_id: str, by: str, at: datetime) -> None:
        self.consultation_type_id = consultation_type_id
        self.forms: list[str] = []
        self.uploads: list[str] = []

    @classmethod
    def create_id(cls, consultation_type_id: str, **_: object) -> UUID:
        return requirements_id(consultation_type_id)

    def set(self, forms: list[str], uploads: list[str], by: str, at: datetime) -> bool:
        errors = Rejections()
        for n, upload in enumerate(uploads):
            if upload not in {t.value for t in DocumentType}:
                errors.add(f"uploads[{n}]", "Use one of: " + ", ".join(t.value for t in
                                                                      DocumentType) + ".")
        for name, values in (("forms", forms), ("uploads", uploads)):
            if len(set(values)) != len(values):
                errors.add(name, "List each one once.")
        errors.raise_if_any()
        if forms == self.forms and uploads == self.uploads:
            return False
        self._set(forms=list(forms), uploads=list(uploads), by=by, at=at)
        return True

    @event("Set", topic=topic(CONTEXT, "VisitRequirements.Set"))
    def _set(self, forms: list[str], uploads: list[str], by: str, at: datetime) -> None:
        self.forms, self.uploads = forms, uploads


class FormResponse(CareAggregate):
    """One patient's answers to one form for one appointment: a draft, then submitted."""

    TOPIC = topic(CONTEXT, "FormResponse")

    @event("Created", topic=topic(CONTEXT, "FormResponse.Started"))
    def __init__(self, patient_id: UUID, appointment_id: UUID, form_id: str, form_version: int,
                 by: str, at: datetime) -> None:
        self.patient_id, self.appointment_id = patient_id, appointment_id
        self.form_id, self.form_version = form_id, form_version
        self.status = "draft"
        self.items: list[dict[str, Any]] = []
        self.answered = self.questions = 0
        self.saved_at: datetime = at
        self.submitted_at: datetime | None = None
        self.saved_by = by

    @classmethod
    def create_id(cls, appointment_id: UUID, form_id: str, **_: object) -> UUID:
        return form_response_id(appointment_id, form_id)

    @property
    def submitted(self) -> bool:
        return self.status == "submitted"

    def save_draft(self, questionnaire: Questionnaire, items: list[dict[str, Any]], by: str,
                   at: datetime) -> bool:
        """Keeps the answers so far, however incomplete; the same answers again: nothing."""
        if self.submitted:
            raise FormClosed("This form has already been sent to the clinic; it cannot be "
                             "changed now. If something is wrong, tell the clinic.")
        errors = shape_errors(items)
        if errors:
            raise InvalidInput(errors)
        if items == self.items:
            return False
        answered, questions = progress(questionnaire, items)
        self._draft_saved(items=items, answered=answered, questions=questions, by=by, at=at)
        return True

    def submit(self, questionnaire: Questionnaire, items: list[dict[str, Any]], by: str,
               at: datetime) -> bool:
        """Checks every answer against the version this response started on; sending the same
        completed answers again records nothing."""
        completed = check_submission(questionnaire, items)
        if self.submitted:
            if completed == self.items:
                return False
            raise FormClosed("This form has already been sent to the clinic; it cannot be "
                             "changed now. If something is wrong, tell the clinic.")
        answered, questions = progress(questionnaire, completed)
        self._submitted(items=completed, answered=answered, questions=questions, by=by, at=at)
        return True

    @event("DraftSaved", topic=topic(CONTEXT, "FormResponse.DraftSaved"))
    def _draft_saved(self, items: list[dict[str, Any]], answered: int, questions: int, by: str,
                     at: datetime) -> None:
        self.items, self.answered, self.questions = items, answered, questions
        self.saved_at, self.saved_by = at, by

    @event("Submitted", topic=topic(CONTEXT, "FormResponse.Submitted"))
    def _submitted(self, items: list[dict[str, Any]], answered: int, questions: int, by: str,
                   at: datetime) -> None:
        self.items, self.answered, self.questions = items, answered, questions
        self.status = "submitted"
        self.saved_at, self.submitted_at, self.saved_by = at, at, by
