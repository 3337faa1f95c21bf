/* rxchat._speedups: build pydantic wire models from orjson's output, in C.
 *
 * Optional: rxchat works the same without it (see rxchat/_fastbuild.py). A Plan describes one
 * model class: its fields in declaration order, each with a kind (what JSON value it accepts and
 * how it becomes the field's value), a nested Plan for model fields, and a default. build_all()
 * parses payloads with the given loads function and builds models exactly as pydantic-core's
 * validate_json would for the values it accepts: the instance's __dict__ holds every field in
 * declaration order, __pydantic_fields_set__ the keys present (unknown ones included, as pydantic
 * does), __pydantic_extra__ the unknown keys (extra="allow") and __pydantic_private__ None. It accepts only exact types (str, int,
 * float, None, dict, list as orjson returns them). Anything else -- a missing required field, a
 * value of another type, a payload that is not JSON -- is not decided here: that payload's slot
 * in the result is None and the caller gives the payload to pydantic, which builds it (lax
 * conversions) or raises its ValidationError. So what this module accepts, it builds the same,
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
    PyObject *descr = _PyType_Lookup(cls, name); /* borrowed */
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) return 0;
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX || (member->flags & READONLY)) return 0;
    return member->offset;
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
    if (!p->names || !p->kinds || !p->subs) {
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
        if (base < K_STR || base > K_DICT) {
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

/* orjson reads an integer beyond 64 bits as a float; pydantic keeps it an int. A float that could
 * have been such an integer (integral, magnitude >= 2**63) is left to pydantic, wherever it is.
 * Returns 1 if `v` (any JSON value) holds none, 0 if it does or nests deeper than 64. */
static int plain_json(PyObject *v, int depth) {
    if (depth > 64) return 0;
    if (PyFloat_CheckExact(v)) {
        double x = PyFloat_AS_DOUBLE(v);
        return !(fabs(x) >= 9223372036854775808.0 && x == floor(x));
    }
    if (PyDict_CheckExact(v)) {
        Py_ssize_t pos = 0;
        PyObject *key, *item;
        while (PyDict_Next(v, &pos, &key, &item))
            if (!plain_json(item, depth + 1)) return 0;
        return 1;
    }
    if (PyList_CheckExact(v)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++)
            if (!plain_json(PyList_GET_ITEM(v, i), depth + 1)) return 0;
        return 1;
    }
    return 1;
}

/* The result convention of build() and convert(): a new reference on success; NULL with an
 * exception set on a real error (out of memory); NULL without an exception when the value is
 * not one this module decides (the caller falls back to pydantic). */
static PyObject *build(Plan *p, PyObject *d);

static PyObject *convert(int kind, PyObject *sub, PyObject *v) {
    if (v == Py_None) {
        if (kind & K_NULLABLE) Py_RETURN_NONE;
        return NULL;
    }
    switch (kind & K_BASE) {
    case K_STR:
        if (PyUnicode_CheckExact(v)) return Py_NewRef(v);
        return NULL;
    case K_INT:
        if (PyLong_CheckExact(v)) return Py_NewRef(v);
        return NULL;
    case K_FLOAT:
        if (PyFloat_CheckExact(v) && plain_json(v, 0)) return Py_NewRef(v);
        return NULL;
    case K_DICT: /* dict[str, Any]: JSON keys are str */
        if (PyDict_CheckExact(v) && plain_json(v, 0)) return Py_NewRef(v);
        return NULL;
    case K_MODEL:
        if (PyDict_CheckExact(v)) return build((Plan *)sub, v);
        return NULL;
    case K_LIST_MODEL: {
        if (!PyList_CheckExact(v)) return NULL;
        Py_ssize_t n = PyList_GET_SIZE(v);
        PyObject *out = PyList_New(n);
        if (out == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = PyList_GET_ITEM(v, i);
            PyObject *m = PyDict_CheckExact(item) ? build((Plan *)sub, item) : NULL;
            if (m == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(out, i, m);
        }
        return out;
    }
    case K_LIST_INT: {
        if (!PyList_CheckExact(v)) return NULL;
        Py_ssize_t n = PyList_GET_SIZE(v);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!PyLong_CheckExact(PyList_GET_ITEM(v, i))) return NULL;
        }
        return PyList_GetSlice(v, 0, n);  /* a list of its own, as pydantic gives */
    }
    }
    return NULL;
}

static PyObject *build(Plan *p, PyObject *d) {
    PyObject *dict = NULL, *fields_set = NULL, *extra = NULL, *obj = NULL;
    unsigned long long seen = 0;
    /* A copy of the template (a memcpy for a small dict) has every field in declaration order
     * with its default; the values present replace theirs without growing the table. */
    dict = PyDict_Copy(p->template);
    if (dict == NULL) goto fail;
    fields_set = PySet_New(NULL);
    if (fields_set == NULL) goto fail;
    extra = PyDict_New();
    if (extra == NULL) goto fail;
    Py_ssize_t pos = 0;
    PyObject *key, *v;
    while (PyDict_Next(d, &pos, &key, &v)) {
        PyObject *position = PyDict_GetItemWithError(p->index, key); /* borrowed */
        if (position == NULL) {
            if (PyErr_Occurred()) goto fail;
            /* An unknown key: kept in __pydantic_extra__ and, as pydantic does, counted
             * among the fields set. */
            if (!plain_json(v, 0)) goto fail;
            if (PyDict_SetItem(extra, key, v) < 0 || PySet_Add(fields_set, key) < 0) goto fail;
            continue;
        }
        Py_ssize_t i = PyLong_AsSsize_t(position);
        PyObject *value = convert(p->kinds[i], p->subs[i], v);
        if (value == NULL) goto fail;
        int rc = PyDict_SetItem(dict, p->names[i], value);
        Py_DECREF(value);
        if (rc < 0 || PySet_Add(fields_set, p->names[i]) < 0) goto fail;
        seen |= 1ULL << i;
    }
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

static PyObject *build_one(PyObject *module, PyObject *args) {
    PyObject *plan, *data;
    if (!PyArg_ParseTuple(args, "O!O", &PlanType, &plan, &data)) return NULL;
    PyObject *m = PyDict_CheckExact(data) ? build((Plan *)plan, data) : NULL;
    if (m == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return m;
}

static PyObject *build_all(PyObject *module, PyObject *args) {
    PyObject *plan, *loads, *payloads;
    if (!PyArg_ParseTuple(args, "O!OO!", &PlanType, &plan, &loads, &PyList_Type, &payloads))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(payloads);
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = NULL;
        PyObject *parsed = PyObject_CallOneArg(loads, PyList_GET_ITEM(payloads, i));
        if (parsed == NULL) {
            /* Not JSON to orjson: pydantic decides (and says what is wrong). */
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
                Py_DECREF(out);
                return NULL;
            }
            PyErr_Clear();
        } else {
            if (PyDict_CheckExact(parsed)) m = build((Plan *)plan, parsed);
            Py_DECREF(parsed);
            if (m == NULL && PyErr_Occurred()) {
                Py_DECREF(out);
                return NULL;
            }
        }
        PyList_SET_ITEM(out, i, m != NULL ? m : Py_NewRef(Py_None));
    }
    return out;
}

static PyMethodDef methods[] = {
    {"build_one", build_one, METH_VARARGS,
     "build_one(plan, data) -> model | None: the model for a parsed JSON object, or None when "
     "pydantic must decide."},
    {"build_all", build_all, METH_VARARGS,
     "build_all(plan, loads, payloads) -> list[model | None]: parse each payload with loads and "
     "build its model; None where pydantic must decide."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "rxchat._speedups",
    "Optional C builder of rxchat's wire models (see rxchat/_fastbuild.py).", -1, methods,
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
        PyModule_AddIntConstant(m, "K_NULLABLE", K_NULLABLE) < 0 ||
        PyModule_AddIntConstant(m, "K_REQUIRED", K_REQUIRED) < 0 ||
        PyModule_AddIntConstant(m, "K_FRESH_LIST", K_FRESH_LIST) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
