/* rxchat._speedups: read chat-completion chunks from JSON straight into pydantic models, in C.
 *
 * Optional: rxchat works the same without it (see rxchat/_c_builder.py). A Plan describes one
 * model class: its fields in declaration order, each with a kind (what JSON value it accepts and
 * how it becomes the field's value), a nested Plan for model fields, and a default. build_all()
 * reads each payload once and builds its models as pydantic-core's validate_json would for the
 * values it accepts: the instance's __dict__ holds every field in declaration order,
 * __pydantic_fields_set__ the keys present (unknown ones included, as pydantic does),
 * __pydantic_extra__ the unknown keys (extra="allow") and __pydantic_private__ None. It accepts
 * only what needs no conversion: strings for str fields, integer literals for int fields,
 * numbers for float fields, null where the field is optional, objects and arrays where models
 * and lists are declared. Anything else -- invalid JSON, a missing required field, a number where
 * a string belongs, a lax conversion pydantic would make, a duplicated key -- is not decided
 * here: that payload's slot in the result is None and the caller gives the payload to pydantic,
 * which builds it or raises its ValidationError. So what this module accepts it builds the same,
 * and it never rejects anything itself.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>

enum {
    K_STR = 1,
    K_INT = 2,
    K_FLOAT = 3,
    K_MODEL = 4,
    K_LIST_MODEL = 5,
    K_LIST_INT = 6,
    K_DICT = 7,
    K_DEFER = 8, /* a field this module does not mirror: present (and not null where optional),
                  * the payload goes to pydantic */
};
#define K_BASE 0xff
#define K_NULLABLE 0x100
#define K_REQUIRED 0x200
#define K_FRESH_LIST 0x400 /* the default is [], a new one per instance */

static PyObject *s_dict, *s_fields_set, *s_extra, *s_private;

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    Py_ssize_t n;
    PyObject **names;    /* field names, owned */
    const char **name_bytes; /* their UTF-8 (kept alive by names) */
    Py_ssize_t *name_lens;
    int *kinds;
    PyObject **subs;     /* Plan of a model field, else NULL; owned */
    PyObject *template;  /* dict: every field name -> its default (None if required) */
    PyObject *index;     /* dict: field name -> its position */
    unsigned long long required; /* bit i: field i is required */
    /* Where a new instance keeps its __dict__ and the three pydantic slots, found once from
     * the class's own descriptors; 0 when the class is laid out otherwise (then generic
     * setattr is used, as pydantic-core does). */
    Py_ssize_t dict_offset, extra_offset, private_offset, fields_set_offset;
} Plan;

static PyTypeObject PlanType;

static void plan_clear_arrays(Plan *p) {
    for (Py_ssize_t i = 0; i < p->n; i++) {
        if (p->names) Py_XDECREF(p->names[i]);
        if (p->subs) Py_XDECREF(p->subs[i]);
    }
    PyMem_Free(p->names);
    PyMem_Free((void *)p->name_bytes);
    PyMem_Free(p->name_lens);
    p->name_bytes = NULL;
    p->name_lens = NULL;
    PyMem_Free(p->kinds);
    PyMem_Free(p->subs);
    p->names = NULL;
    p->kinds = NULL;
    p->subs = NULL;
    p->n = 0;
}

static void plan_dealloc(Plan *p) {
    plan_clear_arrays(p);
    Py_XDECREF(p->cls);
    Py_XDECREF(p->template);
    Py_XDECREF(p->index);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

/* The offset of a __slots__ member of cls named `name`, or 0 if it is not a plain object slot. */
static Py_ssize_t slot_offset(PyTypeObject *cls, PyObject *name) {
    PyObject *descr = PyObject_GetAttr((PyObject *)cls, name); /* the descriptor itself */
    if (descr == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t offset = 0;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READONLY)) offset = member->offset;
    }
    Py_DECREF(descr);
    return offset;
}

static int plan_find_offsets(Plan *p) {
    PyTypeObject *cls = p->cls;
    if (cls->tp_dictoffset > 0 && !(cls->tp_flags & Py_TPFLAGS_MANAGED_DICT) &&
        cls->tp_alloc == PyType_GenericAlloc) {
        p->dict_offset = cls->tp_dictoffset;
        p->extra_offset = slot_offset(cls, s_extra);
        p->private_offset = slot_offset(cls, s_private);
        p->fields_set_offset = slot_offset(cls, s_fields_set);
    }
    if (!p->dict_offset || !p->extra_offset || !p->private_offset || !p->fields_set_offset)
        p->dict_offset = p->extra_offset = p->private_offset = p->fields_set_offset = 0;
    return 0;
}

/* Plan(cls, fields): fields is a tuple of (name: str, kind: int, sub: Plan | None, default). */
static PyObject *plan_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *cls, *fields;
    static char *kwlist[] = {"cls", "fields", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!", kwlist, &PyType_Type, &cls,
                                     &PyTuple_Type, &fields))
        return NULL;
    Plan *p = (Plan *)type->tp_alloc(type, 0);
    if (p == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    if (n > 64) {
        PyErr_SetString(PyExc_ValueError, "a Plan takes at most 64 fields");
        goto error;
    }
    p->template = PyDict_New();
    p->index = PyDict_New();
    if (!p->template || !p->index) goto error;
    p->names = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    p->kinds = PyMem_Calloc(n ? n : 1, sizeof(int));
    p->subs = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    p->name_bytes = PyMem_Calloc(n ? n : 1, sizeof(char *));
    p->name_lens = PyMem_Calloc(n ? n : 1, sizeof(Py_ssize_t));
    if (!p->names || !p->kinds || !p->subs || !p->name_bytes || !p->name_lens) {
        PyErr_NoMemory();
        goto error;
    }
    p->n = n;
    Py_INCREF(cls);
    p->cls = (PyTypeObject *)cls;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *spec = PyTuple_GET_ITEM(fields, i);
        PyObject *name, *sub, *dflt;
        int kind;
        if (!PyTuple_Check(spec) ||
            !PyArg_ParseTuple(spec, "UiOO", &name, &kind, &sub, &dflt)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "a field is (name, kind, sub, default)");
            goto error;
        }
        int base = kind & K_BASE;
        if (base < K_STR || base > K_DEFER) {
            PyErr_Format(PyExc_ValueError, "field %R: unknown kind %d", name, kind);
            goto error;
        }
        if ((base == K_MODEL || base == K_LIST_MODEL) && !PyObject_TypeCheck(sub, &PlanType)) {
            PyErr_Format(PyExc_TypeError, "field %R: a model field needs a Plan", name);
            goto error;
        }
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        p->names[i] = name;
        p->name_bytes[i] = PyUnicode_AsUTF8AndSize(name, &p->name_lens[i]);
        if (p->name_bytes[i] == NULL) goto error;
        p->kinds[i] = kind;
        if (base == K_MODEL || base == K_LIST_MODEL) {
            Py_INCREF(sub);
            p->subs[i] = sub;
        }
        if (kind & K_REQUIRED) {
            p->required |= 1ULL << i;
            dflt = Py_None; /* never kept: without the field there is no model */
        }
        PyObject *position = PyLong_FromSsize_t(i);
        if (position == NULL ||
            PyDict_SetItem(p->template, name, (kind & K_FRESH_LIST) ? Py_None : dflt) < 0 ||
            PyDict_SetItem(p->index, name, position) < 0) {
            Py_XDECREF(position);
            goto error;
        }
        Py_DECREF(position);
    }
    if (plan_find_offsets(p) < 0) goto error;
    return (PyObject *)p;
error:
    Py_DECREF(p);
    return NULL;
}

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rxchat._speedups.Plan",
    .tp_basicsize = sizeof(Plan),
    .tp_dealloc = (destructor)plan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "How to build one model class from parsed JSON.",
    .tp_new = plan_new,
};

/* -- JSON straight into models ------------------------------------------------------------
 *
 * A strict RFC 8259 reader over the payload's UTF-8 bytes that builds the models as it reads,
 * without the intermediate dicts and lists a general parser would make. The convention of every
 * reader below: a new reference on success; NULL with an exception set on a real error (out of
 * memory); NULL without an exception ("pass") when the payload is not one this module decides --
 * not JSON, a value of another type than declared, a duplicated key, nesting deeper than
 * MAX_DEPTH, a number it does not read exactly like pydantic -- and then pydantic decides. */

#define MAX_DEPTH 64

typedef struct {
    const char *p, *end;
    int depth;
} Reader;

static inline void skip_ws(Reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static inline int peek(Reader *r) { return r->p < r->end ? (unsigned char)*r->p : -1; }

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* A string whose opening quote is at r->p. Without escapes it is a slice of the payload, valid
 * UTF-8 already (the payload came from a str); escapes are decoded into a buffer. */
static PyObject *read_string(Reader *r) {
    const char *start = ++r->p, *q = start;
    while (q < r->end) {
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            r->p = q + 1;
            return PyUnicode_DecodeUTF8(start, q - start, "strict");
        }
        if (c == '\\') break;
        if (c < 0x20) return NULL; /* a raw control character is not JSON */
        q++;
    }
    if (q >= r->end) return NULL;
    /* With escapes: decode into a UTF-8 buffer no longer than the source. */
    Py_ssize_t cap = r->end - start;
    char *buf = PyMem_Malloc(cap ? cap : 1);
    if (buf == NULL) return PyErr_NoMemory();
    Py_ssize_t n = q - start;
    memcpy(buf, start, n);
    PyObject *result = NULL;
    while (q < r->end) {
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            r->p = q + 1;
            result = PyUnicode_DecodeUTF8(buf, n, "strict");
            break;
        }
        if (c < 0x20) break;
        if (c != '\\') {
            buf[n++] = (char)c;
            q++;
            continue;
        }
        if (q + 1 >= r->end) break;
        char e = q[1];
        q += 2;
        const char *simple = NULL;
        switch (e) {
        case '"': simple = "\""; break;
        case '\\': simple = "\\"; break;
        case '/': simple = "/"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'n': simple = "\n"; break;
        case 'r': simple = "\r"; break;
        case 't': simple = "\t"; break;
        }
        if (simple != NULL) {
            buf[n++] = *simple;
            continue;
        }
        if (e != 'u' || q + 4 > r->end) goto out;
        unsigned cp;
        if (!hex4(q, &cp)) goto out;
        q += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (q + 6 > r->end || q[0] != '\\' || q[1] != 'u' || !hex4(q + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
                goto out; /* a lone surrogate: pydantic decides */
            q += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            goto out;
        }
        /* \uXXXX is 6 source bytes (12 for a pair): its UTF-8 (at most 4) always fits. */
        if (cp < 0x80) {
            buf[n++] = (char)cp;
        } else if (cp < 0x800) {
            buf[n++] = (char)(0xC0 | (cp >> 6));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            buf[n++] = (char)(0xE0 | (cp >> 12));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            buf[n++] = (char)(0xF0 | (cp >> 18));
            buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
out:
    PyMem_Free(buf);
    return result;
}

/* A number at r->p, checked against the JSON grammar. want: 'i' an int (integer literals only),
 * 'f' a float, 'a' either, as pydantic's JSON reader gives for Any (int for integer literals).
 * Integer literals of more than 18 characters are not read here (NULL: pydantic decides). */
static PyObject *read_number(Reader *r, char want) {
    const char *start = r->p, *q = r->p;
    int is_float = 0;
    if (q < r->end && *q == '-') q++;
    if (q >= r->end) return NULL;
    if (*q == '0') {
        q++;
    } else if (*q >= '1' && *q <= '9') {
        while (q < r->end && *q >= '0' && *q <= '9') q++;
    } else {
        return NULL;
    }
    if (q < r->end && *q == '.') {
        is_float = 1;
        q++;
        if (q >= r->end || *q < '0' || *q > '9') return NULL;
        while (q < r->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        is_float = 1;
        q++;
        if (q < r->end && (*q == '+' || *q == '-')) q++;
        if (q >= r->end || *q < '0' || *q > '9') return NULL;
        while (q < r->end && *q >= '0' && *q <= '9') q++;
    }
    Py_ssize_t len = q - start;
    char small[64];
    if (!is_float) {
        if (want == 'f') {
            /* pydantic turns an integer into a float; exact for up to 15 digits */
            if (len > 15) return NULL;
        }
        r->p = q;
        if (len <= 18) {
            long long v = 0;
            const char *d = start + (*start == '-');
            for (; d < q; d++) v = v * 10 + (*d - '0');
            if (*start == '-') v = -v;
            return want == 'f' ? PyFloat_FromDouble((double)v) : PyLong_FromLongLong(v);
        }
        /* Longer literals are left to pydantic: its reader has its own length limit (about
         * 4,300 characters, the sign counted) and Python's int-string conversion another. */
        r->p = start;
        return NULL;
    }
    if (want == 'i' || len >= (Py_ssize_t)sizeof(small)) return NULL;
    memcpy(small, start, len);
    small[len] = 0;
    char *stop;
    double x = PyOS_string_to_double(small, &stop, NULL);
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (stop != small + len || !isfinite(x)) {
        PyErr_Clear();
        return NULL; /* out of range: pydantic decides */
    }
    r->p = q;
    return PyFloat_FromDouble(x);
}

static int literal(Reader *r, const char *word, Py_ssize_t n) {
    if (r->end - r->p < n || memcmp(r->p, word, n) != 0) return 0;
    r->p += n;
    return 1;
}

static PyObject *read_any(Reader *r);
static PyObject *read_list(Reader *r, int kind, PyObject *sub);

/* An object of unknown keys (dict[str, Any], or a value nested in an extra key). */
static PyObject *read_any_object(Reader *r) {
    if (++r->depth > MAX_DEPTH) return NULL;
    r->p++; /* { */
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    skip_ws(r);
    if (peek(r) == '}') {
        r->p++;
        r->depth--;
        return d;
    }
    for (;;) {
        skip_ws(r);
        if (peek(r) != '"') goto pass;
        PyObject *key = read_string(r);
        if (key == NULL) goto pass;
        skip_ws(r);
        if (peek(r) != ':') {
            Py_DECREF(key);
            goto pass;
        }
        r->p++;
        skip_ws(r);
        PyObject *value = read_any(r);
        if (value == NULL) {
            Py_DECREF(key);
            goto pass;
        }
        Py_ssize_t before = PyDict_GET_SIZE(d);
        int rc = PyDict_SetItem(d, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) goto pass;
        if (PyDict_GET_SIZE(d) == before) goto pass; /* a duplicated key */
        skip_ws(r);
        int c = peek(r);
        r->p++;
        if (c == '}') break;
        if (c != ',') goto pass;
    }
    r->depth--;
    return d;
pass:
    Py_DECREF(d);
    return NULL;
}

static PyObject *read_any(Reader *r) {
    switch (peek(r)) {
    case '"': return read_string(r);
    case '{': return read_any_object(r);
    case '[': return read_list(r, 0, NULL);
    case 't': return literal(r, "true", 4) ? Py_NewRef(Py_True) : NULL;
    case 'f': return literal(r, "false", 5) ? Py_NewRef(Py_False) : NULL;
    case 'n': return literal(r, "null", 4) ? Py_NewRef(Py_None) : NULL;
    default: return read_number(r, 'a');
    }
}

static PyObject *read_model(Reader *r, Plan *p);

/* An array: of models (kind K_LIST_MODEL), of ints (K_LIST_INT), or of any JSON values (0). */
static PyObject *read_list(Reader *r, int kind, PyObject *sub) {
    if (peek(r) != '[' || ++r->depth > MAX_DEPTH) return NULL;
    r->p++;
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    skip_ws(r);
    if (peek(r) == ']') {
        r->p++;
        r->depth--;
        return list;
    }
    for (;;) {
        skip_ws(r);
        int base = kind & K_BASE;
        PyObject *item = base == K_LIST_MODEL ? read_model(r, (Plan *)sub)
                         : base == K_LIST_INT ? read_number(r, 'i')
                                              : read_any(r);
        if (item == NULL) goto pass;
        int rc = PyList_Append(list, item);
        Py_DECREF(item);
        if (rc < 0) goto pass;
        skip_ws(r);
        int c = peek(r);
        r->p++;
        if (c == ']') break;
        if (c != ',') goto pass;
    }
    r->depth--;
    return list;
pass:
    Py_DECREF(list);
    return NULL;
}

/* The value of a declared field. */
static PyObject *read_field(Reader *r, int kind, PyObject *sub) {
    int c = peek(r);
    if (c == 'n') {
        if ((kind & K_NULLABLE) && literal(r, "null", 4)) Py_RETURN_NONE;
        return NULL;
    }
    switch (kind & K_BASE) {
    case K_STR: return c == '"' ? read_string(r) : NULL;
    case K_INT: return (c == '-' || (c >= '0' && c <= '9')) ? read_number(r, 'i') : NULL;
    case K_FLOAT: return (c == '-' || (c >= '0' && c <= '9')) ? read_number(r, 'f') : NULL;
    case K_MODEL: return c == '{' ? read_model(r, (Plan *)sub) : NULL;
    case K_LIST_MODEL:
    case K_LIST_INT: return read_list(r, kind, sub);
    case K_DICT: return c == '{' ? read_any_object(r) : NULL;
    case K_DEFER: return NULL;
    }
    return NULL;
}

static PyObject *read_model(Reader *r, Plan *p) {
    if (peek(r) != '{' || ++r->depth > MAX_DEPTH) return NULL;
    r->p++;
    PyObject *dict = NULL, *fields_set = NULL, *extra = NULL, *obj = NULL;
    unsigned long long seen = 0;
    /* A copy of the template (a memcpy for a small dict) has every field in declaration order
     * with its default; the values read replace theirs without growing the table. */
    dict = PyDict_Copy(p->template);
    if (dict == NULL) goto fail;
    fields_set = PySet_New(NULL);
    if (fields_set == NULL) goto fail;
    extra = PyDict_New();
    if (extra == NULL) goto fail;
    skip_ws(r);
    if (peek(r) == '}') {
        r->p++;
    } else {
        for (;;) {
            skip_ws(r);
            if (peek(r) != '"') goto fail;
            /* Match the key's bytes against the field names; a key with escapes is decoded. */
            const char *k = r->p + 1, *q = k;
            while (q < r->end && *q != '"' && *q != '\\') q++;
            if (q >= r->end) goto fail;
            Py_ssize_t i = -1;
            PyObject *key = NULL;
            if (*q == '"') {
                Py_ssize_t klen = q - k;
                for (Py_ssize_t j = 0; j < p->n; j++) {
                    if (p->name_lens[j] == klen && memcmp(p->name_bytes[j], k, klen) == 0) {
                        i = j;
                        break;
                    }
                }
                if (i < 0) {
                    for (const char *b = k; b < q; b++)
                        if ((unsigned char)*b < 0x20) goto fail;
                    key = PyUnicode_DecodeUTF8(k, klen, "strict");
                    if (key == NULL) goto fail;
                }
                r->p = q + 1;
            } else {
                key = read_string(r);
                if (key == NULL) goto fail;
                PyObject *position = PyDict_GetItemWithError(p->index, key);
                if (position != NULL) {
                    i = PyLong_AsSsize_t(position);
                    Py_CLEAR(key);
                } else if (PyErr_Occurred()) {
                    Py_DECREF(key);
                    goto fail;
                }
            }
            skip_ws(r);
            if (peek(r) != ':') {
                Py_XDECREF(key);
                goto fail;
            }
            r->p++;
            skip_ws(r);
            if (i >= 0) {
                if (seen & (1ULL << i)) goto fail; /* a duplicated key */
                PyObject *value = read_field(r, p->kinds[i], p->subs[i]);
                if (value == NULL) goto fail;
                int rc = PyDict_SetItem(dict, p->names[i], value);
                Py_DECREF(value);
                if (rc < 0 || PySet_Add(fields_set, p->names[i]) < 0) goto fail;
                seen |= 1ULL << i;
            } else {
                /* An unknown key: kept in __pydantic_extra__ and, as pydantic does, counted
                 * among the fields set. */
                PyObject *value = read_any(r);
                if (value == NULL) {
                    Py_DECREF(key);
                    goto fail;
                }
                Py_ssize_t before = PyDict_GET_SIZE(extra);
                int rc = PyDict_SetItem(extra, key, value);
                Py_DECREF(value);
                if (rc < 0 || PyDict_GET_SIZE(extra) == before || PySet_Add(fields_set, key) < 0) {
                    Py_DECREF(key);
                    goto fail;
                }
                Py_DECREF(key);
            }
            skip_ws(r);
            int c = peek(r);
            r->p++;
            if (c == '}') break;
            if (c != ',') goto fail;
        }
    }
    r->depth--;
    if ((seen & p->required) != p->required) goto fail; /* pydantic says what is missing */
    for (Py_ssize_t i = 0; i < p->n; i++) {
        if ((p->kinds[i] & K_FRESH_LIST) && !(seen & (1ULL << i))) {
            PyObject *fresh = PyList_New(0);
            if (fresh == NULL) goto fail;
            int rc = PyDict_SetItem(dict, p->names[i], fresh);
            Py_DECREF(fresh);
            if (rc < 0) goto fail;
        }
    }
    obj = p->cls->tp_alloc(p->cls, 0);
    if (obj == NULL) goto fail;
    if (p->dict_offset) {
        /* A new instance's slots are all NULL: they take over the references. */
        *(PyObject **)((char *)obj + p->dict_offset) = dict;
        *(PyObject **)((char *)obj + p->extra_offset) = extra;
        *(PyObject **)((char *)obj + p->private_offset) = Py_NewRef(Py_None);
        *(PyObject **)((char *)obj + p->fields_set_offset) = fields_set;
        return obj;
    }
    /* The same four slots pydantic-core sets, the same way (generic setattr, no __setattr__). */
    if (PyObject_GenericSetAttr(obj, s_dict, dict) < 0 ||
        PyObject_GenericSetAttr(obj, s_extra, extra) < 0 ||
        PyObject_GenericSetAttr(obj, s_private, Py_None) < 0 ||
        PyObject_GenericSetAttr(obj, s_fields_set, fields_set) < 0)
        goto fail;
    Py_DECREF(dict);
    Py_DECREF(fields_set);
    Py_DECREF(extra);
    return obj;
fail:
    Py_XDECREF(obj);
    Py_XDECREF(dict);
    Py_XDECREF(fields_set);
    Py_XDECREF(extra);
    return NULL;
}

/* The model of one payload (a str), or NULL: an exception set for real errors, else "pass". */
static PyObject *parse_payload(Plan *plan, PyObject *payload) {
    if (!PyUnicode_Check(payload)) return NULL;
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(payload, &size);
    if (text == NULL) {
        /* lone surrogates in the str: not UTF-8, pydantic decides */
        if (!PyErr_ExceptionMatches(PyExc_UnicodeError)) return NULL;
        PyErr_Clear();
        return NULL;
    }
    Reader r = {text, text + size, 0};
    skip_ws(&r);
    PyObject *m = read_model(&r, plan);
    if (m == NULL) return NULL;
    skip_ws(&r);
    if (r.p != r.end) {
        Py_DECREF(m); /* trailing characters */
        return NULL;
    }
    return m;
}

static PyObject *build_all(PyObject *module, PyObject *args) {
    PyObject *plan, *payloads;
    if (!PyArg_ParseTuple(args, "O!O!", &PlanType, &plan, &PyList_Type, &payloads)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(payloads);
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = parse_payload((Plan *)plan, PyList_GET_ITEM(payloads, i));
        if (m == NULL) {
            /* Whatever stopped the reader -- "pass", or a real error such as the int-string
             * conversion limit of a long integer literal or a failed allocation -- pydantic
             * decides that payload, exactly as without this module. */
            PyErr_Clear();
            m = Py_NewRef(Py_None);
        }
        PyList_SET_ITEM(out, i, m);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"build_all", build_all, METH_VARARGS,
     "build_all(plan, payloads) -> list[model | None]: the model of each JSON payload (str), or "
     "None where pydantic must decide."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "rxchat._speedups",
    "Optional C builder of rxchat's wire models (see rxchat/_c_builder.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&PlanType) < 0) return NULL;
    s_dict = PyUnicode_InternFromString("__dict__");
    s_fields_set = PyUnicode_InternFromString("__pydantic_fields_set__");
    s_extra = PyUnicode_InternFromString("__pydantic_extra__");
    s_private = PyUnicode_InternFromString("__pydantic_private__");
    if (!s_dict || !s_fields_set || !s_extra || !s_private) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Plan", (PyObject *)&PlanType) < 0 ||
        PyModule_AddIntConstant(m, "K_STR", K_STR) < 0 ||
        PyModule_AddIntConstant(m, "K_INT", K_INT) < 0 ||
        PyModule_AddIntConstant(m, "K_FLOAT", K_FLOAT) < 0 ||
        PyModule_AddIntConstant(m, "K_MODEL", K_MODEL) < 0 ||
        PyModule_AddIntConstant(m, "K_LIST_MODEL", K_LIST_MODEL) < 0 ||
        PyModule_AddIntConstant(m, "K_LIST_INT", K_LIST_INT) < 0 ||
        PyModule_AddIntConstant(m, "K_DICT", K_DICT) < 0 ||
        PyModule_AddIntConstant(m, "K_DEFER", K_DEFER) < 0 ||
        PyModule_AddIntConstant(m, "K_NULLABLE", K_NULLABLE) < 0 ||
        PyModule_AddIntConstant(m, "K_REQUIRED", K_REQUIRED) < 0 ||
        PyModule_AddIntConstant(m, "K_FRESH_LIST", K_FRESH_LIST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
