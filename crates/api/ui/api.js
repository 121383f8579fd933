// The API client: the one module that knows the server's paths. Bearer token in sessionStorage,
// errors as ApiError carrying the server's error_type, uploads with progress.
const BASE = "/api";

export class ApiError extends Error {
  constructor(body, status) {
    super(body.error || `HTTP ${status}`);
    this.errorType = body.error_type || "Internal";
    this.requestId = body.request_id;
    this.status = status;
  }
}

// What each error_type means for the person in front of the screen.
const PLAIN = {
  ValidationError: "Please check what you entered",
  Unauthorized: "Please log in again",
  Forbidden: "Your account may not do this",
  NotFound: "This no longer exists",
  Conflict: "This clashes with something that exists already",
  PayloadTooLarge: "The file is too large",
  UnsupportedMediaType: "This kind of file is not accepted",
  UnsupportedImage: "This file is not a photo we can read",
  NoFaceDetected: "No face was found in the photo",
  MultipleFaces: "The photo shows several people; use one with only this student",
  ModelNotAvailable: "The face recognition model is not installed on the server",
  WorkerCrashed: "The photo could not be analysed (the analysis stopped)",
  WorkerTimeout: "Analysing the photo took too long",
  Overloaded: "The server is busy; please try again in a moment",
  TooManyRequests: "Too many attempts; please wait a moment",
  StorageUnavailable: "The server cannot store this now; nothing was changed",
  NetworkError: "The server cannot be reached",
  Internal: "Something went wrong on the server",
};

/** An error in plain words, with its error_type and the server's detail. */
export function plainError(e) {
  if (!(e instanceof ApiError)) return `Something went wrong in this page: ${e && e.message ? e.message : e}`;
  const plain = PLAIN[e.errorType] || "The request failed";
  return `${plain} (${e.errorType}): ${e.message}${e.requestId ? ` — request ${e.requestId}` : ""}`;
}

export const auth = {
  token: () => sessionStorage.getItem("token"),
  loggedIn: () => Boolean(sessionStorage.getItem("token")),
  async login(username, password) {
    const r = await call("POST", "/auth/login/", { username, password });
    sessionStorage.setItem("token", r.token);
  },
  async logout() {
    try { await call("POST", "/auth/logout/"); } finally { sessionStorage.removeItem("token"); }
  },
};

async function call(method, path, body, { raw = false, keepalive = false } = {}) {
  const headers = {};
  const token = auth.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  let response;
  try {
    response = await fetch(BASE + path, { method, headers, body: payload, keepalive });
  } catch {
    throw new ApiError({ error_type: "NetworkError", error: "the server cannot be reached" }, 0);
  }
  if (response.status === 401 && path !== "/auth/login/") {
    sessionStorage.removeItem("token");
    location.hash = "#/login";
  }
  if (!response.ok) {
    let data;
    try { data = await response.json(); } catch { data = { error: response.statusText }; }
    throw new ApiError(data, response.status);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

/** Every item of a paginated list, page after page. */
async function all(path) {
  const sep = path.includes("?") ? "&" : "?";
  const items = [];
  for (let page = 1; ; page++) {
    const r = await call("GET", `${path}${sep}page_size=500&page=${page}`);
    items.push(...r.results);
    if (!r.next) return items;
  }
}

/** An image of the API (crop, preview, reference) as a Blob. */
export async function fetchBlob(path) {
  return (await call("GET", path, undefined, { raw: true })).blob();
}

/** Downloads an API file (CSV) with the token under `name`. */
async function download(path, name) {
  const response = await call("GET", path, undefined, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url; a.download = name;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Posts files with upload progress (fetch cannot report it): onProgress(fraction 0..1). */
function upload(path, field, files, onProgress) {
  const form = new FormData();
  for (const f of files) form.append(field, f, f.name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", BASE + path);
    xhr.setRequestHeader("Authorization", `Bearer ${auth.token()}`);
    xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) onProgress(ev.loaded / ev.total); };
    xhr.onload = () => {
      let body;
      try { body = JSON.parse(xhr.responseText); } catch { body = { error: xhr.statusText }; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body); else reject(new ApiError(body, xhr.status));
    };
    xhr.onerror = () => reject(new ApiError({ error_type: "NetworkError", error: "the upload did not reach the server" }, 0));
    xhr.send(form);
  });
}

const A = "/attendance";

export const courses = {
  list: () => all(`${A}/courses/`),
  get: (id) => call("GET", `${A}/courses/${id}/`),
  create: (body) => call("POST", `${A}/courses/`, body),
  update: (id, body) => call("PATCH", `${A}/courses/${id}/`, body),
  remove: (id) => call("DELETE", `${A}/courses/${id}/`),
  attendance: (id) => call("GET", `${A}/courses/${id}/attendance/`),
  attendanceCsv: (id) => download(`${A}/courses/${id}/attendance/csv/`, `course-${id}-attendance.csv`),
  clusters: (id) => call("GET", `${A}/courses/${id}/clusters/`),
  recluster: (id) => call("POST", `${A}/courses/${id}/clusters/recluster/`),
};

export const clusters = {
  name: (id, body) => call("POST", `${A}/clusters/${id}/name/`, body),
  merge: (ids) => call("POST", `${A}/clusters/merge/`, { cluster_ids: ids }),
};

export const students = {
  list: (course) => all(`${A}/students/?course=${course}`),
  create: (body) => call("POST", `${A}/students/`, body),
  update: (id, body) => call("PATCH", `${A}/students/${id}/`, body),
  remove: (id, opts) => call("DELETE", `${A}/students/${id}/`, undefined, opts),
  references: (id) => call("GET", `${A}/students/${id}/references/`),
  enroll: (id, files, onProgress) => upload(`${A}/students/${id}/references/`, "images", files, onProgress),
  removeReference: (id, opts) => call("DELETE", `${A}/references/${id}/`, undefined, opts),
};

export const sessions = {
  list: (course) => all(`${A}/sessions/?course=${course}`),
  get: (id) => call("GET", `${A}/sessions/${id}/`),
  create: (body) => call("POST", `${A}/sessions/`, body),
  update: (id, body) => call("PATCH", `${A}/sessions/${id}/`, body),
  remove: (id, opts) => call("DELETE", `${A}/sessions/${id}/`, undefined, opts),
  images: (id) => call("GET", `${A}/sessions/${id}/images/`),
  upload: (id, files, onProgress) => upload(`${A}/sessions/${id}/images/`, "images", files, onProgress),
  process: (id) => call("POST", `${A}/sessions/${id}/process/`),
  assignAgain: (id) => call("POST", `${A}/sessions/${id}/assign/`),
  crops: (id) => all(`${A}/sessions/${id}/face-crops/`),
  unassigned: (id, page, size) => call("GET", `${A}/sessions/${id}/face-crops/?unassigned=true&page_size=${size}&page=${page}`),
  attendance: (id) => call("GET", `${A}/sessions/${id}/attendance/`),
  setAttendance: (id, student, status) => call("PUT", `${A}/sessions/${id}/attendance/${student}/`, { status }),
  attendanceCsv: (id) => download(`${A}/sessions/${id}/attendance/csv/`, `session-${id}-attendance.csv`),
};

export const images = {
  preview: (id) => `${A}/images/${id}/preview/`,
  remove: (id, opts) => call("DELETE", `${A}/images/${id}/`, undefined, opts),
};

export const jobs = { get: (id) => call("GET", `${A}/jobs/${id}/`) };

export const crops = {
  image: (id) => `${A}/face-crops/${id}/image/`,
  get: (id) => call("GET", `${A}/face-crops/${id}/`),
  assign: (id, student) => call("POST", `${A}/face-crops/${id}/assign/`, { student_id: student }),
  notAStudent: (id) => call("POST", `${A}/face-crops/${id}/not-a-student/`),
  reset: (id) => call("POST", `${A}/face-crops/${id}/reset/`),
  computeSignature: (id) => call("POST", `${A}/face-crops/${id}/generate-embedding/`, { force_regenerate: true }),
  computeSignatures: (ids) => call("POST", `${A}/face-crops/generate-embeddings-batch/`, { face_crop_ids: ids, force_regenerate: true }),
  /** Puts a face back as it was before its last correction (the server keeps that state, once). */
  undo: (id) => call("POST", `${A}/face-crops/${id}/undo/`),
};

/** A mistake the page itself catches before asking the server, shown like the server's. */
export const userError = (message) => new ApiError({ error_type: "ValidationError", error: message }, 400);
